"""Physician edits: shown to the patient, kept with the original, exported for the LoRA fine-tune."""

import json

import pytest
from django.core.exceptions import PermissionDenied

from apps.audit.models import AuditEvent
from apps.explanations import services
from apps.explanations.models import ExplanationEdit
from ml_core.llm.knowledge import DISCLAIMER
from ml_core.llm.prompt import build_prompt
from ml_core.llm.testing import sample_facts

EDIT = "Your X-ray shows signs that can fit pneumonia (82% probability). Your physician will call you today."


def test_physician_edit_replaces_the_text_and_keeps_the_original(template_explained_study, physician):
    original = template_explained_study.explanation.text
    edit = services.edit_explanation(study=template_explained_study, editor=physician, text=EDIT)
    template_explained_study.explanation.refresh_from_db()
    assert template_explained_study.explanation.text == f"{EDIT} {DISCLAIMER}"  # the disclaimer always closes it
    assert template_explained_study.explanation.engine == "physician"
    assert (edit.original_text, edit.original_engine) == (original, "template")
    assert edit.prompt == build_prompt(sample_facts())
    assert edit.validation["passed"] is True
    assert AuditEvent.objects.filter(action="explanation.edit", object_id=str(template_explained_study.pk)).count() == 1


def test_patients_cannot_edit(template_explained_study):
    with pytest.raises(PermissionDenied):
        services.edit_explanation(study=template_explained_study, editor=template_explained_study.owner, text=EDIT)
    assert not ExplanationEdit.objects.exists()


def test_export_keeps_the_latest_edit_per_explanation(template_explained_study, physician, tmp_path):
    services.edit_explanation(study=template_explained_study, editor=physician, text="First draft about pneumonia.")
    services.edit_explanation(study=template_explained_study, editor=physician, text=EDIT)
    assert services.export_edit_dataset(tmp_path / "edits.json") == 1
    rows = json.loads((tmp_path / "edits.json").read_text())
    assert rows == [{"instruction": build_prompt(sample_facts()), "output": f"{EDIT} {DISCLAIMER}", "input": ""}]


def test_fine_tune_job_refuses_to_run_without_edits(db, tmp_path):
    with pytest.raises(services.ExplanationError) as exc:
        services.run_explainer_finetune(steps=2, out_dir=tmp_path / "lora")
    assert exc.value.code == "no_edits"


@pytest.mark.slow
def test_finetune_command_trains_on_the_edits(
    template_explained_study, physician, tiny_llm_checkpoint, tmp_path, settings, capsys
):
    from django.core.management import call_command

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    services.edit_explanation(study=template_explained_study, editor=physician, text=EDIT)
    call_command("finetune_explainer", steps=2, out=str(tmp_path / "lora"), base=str(tiny_llm_checkpoint))
    assert "set DEEPMED_LLM_CHECKPOINT" in capsys.readouterr().out
    assert (tmp_path / "lora" / "checkpoint" / "final" / "lit_model.pth").is_file()
    rows = json.loads((tmp_path / "lora" / "edits.json").read_text())
    assert [r["output"] for r in rows] == [f"{EDIT} {DISCLAIMER}"]
    assert list((tmp_path / "mlartifacts").rglob("finetune.log"))  # tracked, artifacts where configured
