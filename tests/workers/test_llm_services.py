"""Services mode: a real `celery worker` subprocess consuming from Redis runs inference then the
llm task; the study ends `explained` with its Explanation stored in PostgreSQL."""

import pytest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_worker_process_explains_after_predicting(
    consenting_patient, champion, xray_png, flushed_redis, celery_worker_process, process_env, tiny_llm_checkpoint
):
    import time

    from apps.studies.models import Study, StudyStatus
    from apps.studies.services import create_study

    process_env.update(DEEPMED_LLM_CHECKPOINT=str(tiny_llm_checkpoint), DEEPMED_LLM_MAX_NEW_TOKENS="40")
    study = create_study(owner=consenting_patient, data=xray_png)
    worker = celery_worker_process()
    deadline = time.monotonic() + 180
    while Study.objects.get(pk=study.pk).status not in (StudyStatus.EXPLAINED, StudyStatus.FAILED):
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.3)
    study.refresh_from_db()
    assert study.status == StudyStatus.EXPLAINED, worker.log()[-3000:]
    assert study.explanation.model_name.startswith("tiny-test-gpt@")
    assert study.explanation.engine == "template"  # the random tiny model never passes the validator
    assert "workers.llm.generate_explanation" in worker.log()
