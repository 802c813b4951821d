"""apps.studies.selectors: what a study's status says it can hold is not asked of the database."""

import pytest

from apps.studies import selectors
from apps.studies.models import Study

pytestmark = pytest.mark.django_db


def test_a_result_asks_only_for_what_the_status_allows(predicted_study, django_assert_num_queries):
    """A predicted study has no explanation or review yet (their services move the study on in the
    transaction that stores them): its result is one query, the prediction."""
    with django_assert_num_queries(1):
        result = selectors.study_result(predicted_study)
    assert result.prediction is not None and result.explanation is None and result.review is None


def test_an_explained_and_a_reviewed_study_still_show_theirs(reviewed_study, django_assert_num_queries):
    study = Study.objects.get(pk=reviewed_study.pk)  # nothing cached on it
    with django_assert_num_queries(3):  # prediction, explanation, review
        result = selectors.study_result(study)
    assert result.explanation.text and result.review.final_label == "NORMAL"
    study = Study.objects.get(pk=reviewed_study.pk)
    study.status = "explained"  # as it was before the review: its explanation, and no review asked
    with django_assert_num_queries(2):  # prediction, explanation
        result = selectors.study_result(study)
    assert result.explanation is not None and result.review is None
