from datetime import datetime, timedelta

import pytest

from apps.review import priority


def test_severe_classes_outrank_normal_and_unknown_classes_count_as_suspicious():
    assert priority.severity("COVID-19") == priority.severity("PNEUMONIA") > priority.severity("NORMAL")
    assert priority.severity("normal") == priority.SEVERITY["NORMAL"]
    assert priority.severity("SOMETHING_NEW") == priority.UNKNOWN_SEVERITY > priority.severity("NORMAL")


def test_uncertainty_is_normalised_entropy():
    assert priority.uncertainty({"A": 1.0, "B": 0.0, "C": 0.0}) == pytest.approx(0.0)
    assert priority.uncertainty({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}) == pytest.approx(1.0)
    assert (
        0 < priority.uncertainty({"A": 0.8, "B": 0.1, "C": 0.1}) < priority.uncertainty({"A": 0.5, "B": 0.3, "C": 0.2})
    )


def test_confidence_bands_follow_settings(settings):
    settings.DEEPMED_LOW_CONFIDENCE = 0.6
    assert [priority.confidence_band(c) for c in (0.59, 0.6, 0.84, 0.85, 0.99)] == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    settings.DEEPMED_LOW_CONFIDENCE = 0.7
    assert priority.confidence_band(0.65) == "low"
    assert priority.confidence_range("medium") == (0.7, priority.HIGH_CONFIDENCE)


def test_priority_key_orders_severity_then_uncertainty_then_age():
    now = datetime(2026, 1, 1)
    sure_normal = priority.priority_key("NORMAL", {"NORMAL": 0.98, "PNEUMONIA": 0.02}, now - timedelta(days=9))
    unsure_normal = priority.priority_key("NORMAL", {"NORMAL": 0.55, "PNEUMONIA": 0.45}, now)
    new_covid = priority.priority_key("COVID-19", {"COVID-19": 0.97, "NORMAL": 0.03}, now)
    old_covid = priority.priority_key("COVID-19", {"COVID-19": 0.96, "NORMAL": 0.04}, now - timedelta(hours=1))
    assert sorted([sure_normal, unsure_normal, new_covid, old_covid]) == [
        old_covid,
        new_covid,
        unsure_normal,
        sure_normal,
    ]
