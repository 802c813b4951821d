"""The model card's targets table (ml_core/model_card.py)."""

from ml_core.model_card import _targets

TEST = {"macro_f1": 0.95, "roc_auc_macro": 0.99, "min_recall": 0.93, "per_source": {}}
CAL = {"test_ece_after": 0.01}


def _ood(passed: float) -> dict:
    gate = {"xray_pass_rate": passed, "overall_rejection_rate": 1.0}
    return {"chosen": "mahalanobis_mean_std", "mahalanobis_mean_std": gate, "n_inliers": 398}


def test_the_ood_row_counts_the_passed_xrays_so_a_near_miss_does_not_read_as_99_percent():
    (row,) = [r for r in _targets(TEST, CAL, _ood(394 / 398), None) if r.startswith("| OOD gate")]
    assert "98.99% passed (394 of 398), 100.0% rejected" in row and row.endswith("| **no** |")
    (row,) = [r for r in _targets(TEST, CAL, _ood(395 / 398), None) if r.startswith("| OOD gate")]
    assert "99.25% passed (395 of 398)" in row and row.endswith("| yes |")


def test_an_ood_report_without_counts_keeps_the_percentages():
    ood = _ood(0.98)
    del ood["n_inliers"]
    (row,) = [r for r in _targets(TEST, CAL, ood, None) if r.startswith("| OOD gate")]
    assert "98.0% passed, 100.0% rejected" in row
