"""The tabular registry: a succeeded experiment is the next version of its dataset's model;
gates (test macro-F1 and ROC-AUC floors, CV std ceiling) guard promotion to champion, an
override needs a written reason; rollback gives the champion back; everything is audited."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent, Outcome
from apps.tabular import selectors, services
from apps.tabular.errors import TabularError
from apps.tabular.models import PromotionAction, TabularModel, TabularPromotion
from tests.factories import TabularDatasetFactory, TabularExperimentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gates(settings):
    settings.DEEPMED_TABULAR_GATE_F1_FLOOR = 0.7
    settings.DEEPMED_TABULAR_GATE_ROC_AUC_FLOOR = 0.8
    settings.DEEPMED_TABULAR_GATE_CV_STD_CEILING = 0.1


@pytest.fixture
def heart():
    return TabularDatasetFactory(name="Heart Disease (Cleveland)")


def test_model_name_is_the_dataset_slug_and_versions_count_up(heart):
    a, b = TabularExperimentFactory(dataset=heart), TabularExperimentFactory(dataset=heart)
    assert (a.model_name, a.model_version, b.model_version) == ("heart-disease-cleveland", 1, 2)
    assert TabularModel.objects.get().registered_name == "tabular-heart-disease-cleveland"
    [entry] = selectors.list_models()
    assert entry["name"] == "heart-disease-cleveland" and entry["champion"] is None and entry["versions"] == 2


def test_gates_pass(gates):
    exp = TabularExperimentFactory(f1=0.85, roc_auc=0.91, cv_std=0.03)
    result = selectors.check_gates(exp)
    assert [g["name"] for g in result] == ["test_f1_macro_floor", "test_roc_auc_floor", "cv_std_ceiling"]
    assert all(g["passed"] for g in result)
    assert {g["name"]: (g["value"], g["threshold"]) for g in result}["test_roc_auc_floor"] == (0.91, 0.8)


@pytest.mark.parametrize(
    ("figures", "failing"),
    [
        ({"f1": 0.6}, "test_f1_macro_floor"),
        ({"roc_auc": 0.75}, "test_roc_auc_floor"),
        ({"cv_std": 0.2}, "cv_std_ceiling"),
        ({"roc_auc": None}, "test_roc_auc_floor"),  # a missing figure fails its gate
    ],
)
def test_each_gate_fails_on_its_own(gates, figures, failing):
    exp = TabularExperimentFactory(**figures)
    assert [g["name"] for g in selectors.check_gates(exp) if not g["passed"]] == [failing]


def test_gate_thresholds_come_from_settings(settings):
    settings.DEEPMED_TABULAR_GATE_ROC_AUC_FLOOR = 0.99
    exp = TabularExperimentFactory(roc_auc=0.95)
    gate = next(g for g in selectors.check_gates(exp) if g["name"] == "test_roc_auc_floor")
    assert gate == {**gate, "passed": False, "threshold": 0.99}


def test_promote_when_gates_pass(gates, admin_user, heart):
    exp = TabularExperimentFactory(dataset=heart)
    promotion = services.promote_experiment(actor=admin_user, experiment=exp)
    assert promotion.action == PromotionAction.PROMOTE and promotion.previous is None and promotion.actor == admin_user
    assert all(g["passed"] for g in promotion.gates) and promotion.override_reason == ""
    assert selectors.get_champion("heart-disease-cleveland") == exp
    assert AuditEvent.objects.filter(action="tabular.model.promote", object_id=str(exp.pk)).exists()
    [entry] = selectors.list_models()
    assert entry["champion"] == exp


def test_failing_gates_refuse_without_a_reason(gates, admin_user):
    exp = TabularExperimentFactory(f1=0.5)
    with pytest.raises(TabularError) as info:
        services.promote_experiment(actor=admin_user, experiment=exp, override_reason="   ")
    assert info.value.code == "gates_failed" and info.value.http_status == 409
    assert [g["name"] for g in info.value.details["failed_gates"]] == ["test_f1_macro_floor"]
    assert not TabularPromotion.objects.exists()
    with pytest.raises(TabularError, match="no champion"):
        selectors.get_champion(exp.model_name)
    assert AuditEvent.objects.filter(action="tabular.model.promote", outcome=Outcome.DENIED).exists()


def test_override_with_a_reason_is_recorded(gates, admin_user):
    exp = TabularExperimentFactory(f1=0.5)
    promotion = services.promote_experiment(actor=admin_user, experiment=exp, override_reason="pilot, reviewed")
    assert promotion.override_reason == "pilot, reviewed"
    assert selectors.get_champion(exp.model_name) == exp
    event = AuditEvent.objects.get(action="tabular.model.promote.override")
    assert event.detail["failed_gates"] == ["test_f1_macro_floor"]


def test_only_admins_promote_and_roll_back(gates, physician):
    exp = TabularExperimentFactory()
    with pytest.raises(TabularError) as info:
        services.promote_experiment(actor=physician, experiment=exp)
    assert info.value.code == "forbidden"
    with pytest.raises(TabularError, match="administrators"):
        services.rollback_model(actor=physician, name=exp.model_name)


def test_an_unfinished_experiment_cannot_be_promoted(admin_user):
    exp = TabularExperimentFactory(status="running", result={}, registered=False)
    with pytest.raises(TabularError) as info:
        services.promote_experiment(actor=admin_user, experiment=exp, override_reason="try")
    assert info.value.code == "model_not_ready"
    assert [(g["passed"], g["value"]) for g in selectors.check_gates(exp)] == [(False, None)] * 3


def test_rollback_returns_the_previous_champion_then_stops(gates, admin_user, heart):
    v1, v2 = TabularExperimentFactory(dataset=heart), TabularExperimentFactory(dataset=heart)
    services.promote_experiment(actor=admin_user, experiment=v1)
    services.promote_experiment(actor=admin_user, experiment=v2)
    name = v1.model_name
    assert selectors.get_champion(name) == v2
    with pytest.raises(TabularError) as info:
        services.promote_experiment(actor=admin_user, experiment=v2)
    assert info.value.code == "already_champion"
    back = services.rollback_model(actor=admin_user, name=name)
    assert back.action == PromotionAction.ROLLBACK and back.experiment == v1 and back.previous == v2
    assert selectors.get_champion(name) == v1
    assert AuditEvent.objects.filter(action="tabular.model.rollback", object_id=str(v1.pk)).exists()
    with pytest.raises(TabularError) as info:  # v1 was the first champion: nothing before it
        services.rollback_model(actor=admin_user, name=name)
    assert info.value.code == "nothing_to_roll_back" and info.value.http_status == 409
    assert [p.action for p in selectors.list_promotions(name)] == ["rollback", "promote", "promote"]


def test_unknown_model(admin_user):
    with pytest.raises(TabularError) as info:
        selectors.get_champion("nope")
    assert info.value.code == "not_found" and info.value.http_status == 404
    with pytest.raises(TabularError) as info:
        services.rollback_model(actor=admin_user, name="nope")
    assert info.value.code == "not_found"
