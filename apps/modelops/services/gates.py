"""Held-out evaluation, quality gates, promotion and rollback of the champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from apps.audit.services import record_event
from apps.modelops import selectors
from apps.modelops.models import Alias, ModelVersion, Promotion, PromotionAction
from apps.modelops.services.errors import GatesFailed, NoHoldout, NothingToRollBack, SameVersion
from apps.modelops.services.registry import set_alias
from ml_core.package import load_package_meta

if TYPE_CHECKING:
    from ml_core.evaluate import EvalReport


@dataclass(frozen=True)
class HeldOutScores:
    """A package's scores on the held-out set, with the fingerprint of the set they were computed on."""

    fingerprint: str
    report: EvalReport


def score_held_out(package_dir: str | Path, *, compute: Callable[..., EvalReport] | None = None) -> HeldOutScores:
    """Score a package on today's held-out set; ``compute(fn, *args, **kwargs)`` runs the scoring
    elsewhere (a training run's child process), by default in this thread."""
    holdout = selectors.holdout_dir()
    fingerprint = selectors.holdout_fingerprint(holdout)  # before scoring: a set changed meanwhile mismatches
    return HeldOutScores(fingerprint, _score_package(package_dir, holdout, compute))


def evaluate_version(
    version: ModelVersion, *, force: bool = False, scores: HeldOutScores | None = None
) -> dict[str, Any]:
    """Evaluate `version` on the shared held-out set (cached on the version per held-out hash).
    `scores`: what the caller already computed for this package (a training run scores its package
    once for MLflow and the gates); ignored unless computed on the held-out set of today."""
    holdout = selectors.holdout_dir()
    fingerprint = selectors.holdout_fingerprint(holdout)
    if not force and version.evaluation.get("holdout_fingerprint") == fingerprint:
        return version.evaluation
    if scores is None or scores.fingerprint != fingerprint:
        scores = HeldOutScores(fingerprint, _score_package(version.package_uri, holdout))
    report = _console_report(version.package_uri, holdout, scores.report)
    report["holdout_fingerprint"] = fingerprint
    classes = report.get("classes") or version.classes
    report["confusion_rows"] = [
        {"label": c, "counts": row} for c, row in zip(classes, report.get("confusion_matrix", []))
    ]
    version.evaluation = report
    version.save(update_fields=["evaluation"])
    return report


@dataclass
class GateResult:
    name: str
    passed: bool
    value: Any
    threshold: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gates(version: ModelVersion) -> list[GateResult]:
    """Every quality gate for `version` against the current champion, on the same held-out set."""
    report = evaluate_version(version)
    meta = load_package_meta(version.package_uri)
    champion = selectors.get_champion()
    f1 = float(report.get("macro_f1", 0.0))
    gates = [
        GateResult(
            "macro_f1_floor",
            f1 >= settings.DEEPMED_GATE_F1_FLOOR,
            round(f1, 4),
            settings.DEEPMED_GATE_F1_FLOOR,
            "macro-F1 on the held-out set",
        )
    ]
    if champion is not None and champion.pk != version.pk:
        champion_f1 = float(evaluate_version(champion).get("macro_f1", 0.0))
        floor = champion_f1 - settings.DEEPMED_GATE_F1_TOLERANCE
        gates.append(
            GateResult(
                "macro_f1_vs_champion",
                f1 >= floor,
                round(f1, 4),
                round(floor, 4),
                f"champion {champion} has {champion_f1:.4f}",
            )
        )
    recalls = report.get("per_class_recall", {})
    low = {c: round(r, 4) for c, r in recalls.items() if r < settings.DEEPMED_GATE_RECALL_FLOOR}
    gates.append(
        GateResult(
            "class_recall_floor",
            bool(recalls) and not low,
            low or recalls,
            settings.DEEPMED_GATE_RECALL_FLOOR,
            "every class's recall",
        )
    )
    parity = meta.onnx_parity_max_abs_diff
    gates.append(
        GateResult(
            "onnx_parity",
            parity is not None and parity <= settings.DEEPMED_GATE_ONNX_PARITY,
            parity,
            settings.DEEPMED_GATE_ONNX_PARITY,
            "max |torch − ONNX| logits",
        )
    )
    p95 = report.get("latency_ms", {}).get("p95")
    p95 = None if p95 is None else round(p95, 2)
    gates.append(
        GateResult(
            "p95_latency_ms",
            p95 is not None and p95 <= settings.DEEPMED_GATE_P95_LATENCY_MS,
            p95,
            settings.DEEPMED_GATE_P95_LATENCY_MS,
            "single image, this machine",
        )
    )
    ood_ok = bool(meta.ood and meta.ood.get("threshold") is not None)
    gates.append(
        GateResult(
            "ood_calibrated",
            ood_ok or not settings.DEEPMED_GATE_REQUIRE_OOD,
            ood_ok,
            True,
            "package carries a calibrated out-of-distribution gate",
        )
    )
    return gates


def evaluate_on_holdout(version: ModelVersion) -> dict[str, Any]:
    """`evaluate_version`, refused with NoHoldout when the held-out set is missing."""
    try:
        return evaluate_version(version)
    except FileNotFoundError as exc:
        raise NoHoldout(str(exc)) from exc


def compare_versions(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    """Two different versions on the same held-out set, with the quality gates of the candidate
    `b`: {"reports": [A's, B's], "gates": [GateResult], "gates_passed": bool}."""
    if a.pk == b.pk:
        raise SameVersion("choose two different versions to compare")
    try:
        reports = [evaluate_version(a), evaluate_version(b)]
        gates = check_gates(b)
    except FileNotFoundError as exc:
        raise NoHoldout(str(exc)) from exc
    return {"reports": reports, "gates": gates, "gates_passed": all(g.passed for g in gates)}


def promote_version(version: ModelVersion, *, actor=None, override_reason: str = "") -> Promotion:
    """Move the `champion` alias to `version` (MLflow + mirror). Failing gates block it unless
    an admin gives a written reason; both are audited."""
    try:
        gates = check_gates(version)
    except FileNotFoundError as exc:  # no held-out set to evaluate on: nothing to decide with
        raise NoHoldout(str(exc)) from exc
    failed = [g for g in gates if not g.passed]
    override_reason = (override_reason or "").strip()
    if failed and not override_reason:
        record_event(
            actor=actor,
            action="model.promote",
            obj=version,
            outcome="denied",
            detail={"failed_gates": [g.to_dict() for g in failed]},
        )
        raise GatesFailed(failed)
    with transaction.atomic():
        previous = selectors.get_champion()
        set_alias(version, Alias.CHAMPION, actor=actor)
        promotion = Promotion.objects.create(
            action=PromotionAction.PROMOTE,
            version=version,
            previous=previous,
            gates=[g.to_dict() for g in gates],
            override_reason=override_reason if failed else "",
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(
            actor=actor,
            action="model.promote.override" if failed else "model.promote",
            obj=version,
            detail={
                "previous": str(previous) if previous else None,
                "override_reason": promotion.override_reason,
                "failed_gates": [g.name for g in failed],
            },
        )
    return promotion


def rollback_champion(*, registered_name: str = "", actor=None) -> Promotion:
    """Give the champion alias back to the version that held it before the current champion."""
    with transaction.atomic():
        current = selectors.get_champion()
        last = Promotion.objects.filter(version=current).exclude(previous=None).first() if current else None
        if current is None or last is None or (registered_name and last.previous.registered_name != registered_name):
            raise NothingToRollBack("there is no previous champion to roll back to")
        target = last.previous
        set_alias(target, Alias.CHAMPION, actor=actor)
        promotion = Promotion.objects.create(
            action=PromotionAction.ROLLBACK,
            version=target,
            previous=current,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record_event(actor=actor, action="model.rollback", obj=target, detail={"from": str(current)})
    return promotion


LATENCY_SAMPLE = 50  # single-image predictions timed per evaluation


def _score_package(
    package_dir: str | Path, holdout: Path, compute: Callable[..., EvalReport] | None = None
) -> EvalReport:
    """ml_core.evaluate on the held-out set, through ``compute`` when given (see score_held_out)."""
    from ml_core import evaluate

    run = compute or (lambda fn, *args, **kwargs: fn(*args, **kwargs))
    threads = settings.DEEPMED_INFERENCE_THREADS
    return run(evaluate.evaluate_package, str(package_dir), holdout, intra_op_threads=threads)


def _console_report(package_dir: str, holdout: Path, scored: EvalReport) -> dict[str, Any]:
    """ml_core.evaluate metrics + what the console draws (ROC points, reliability bins) + serving
    latency (single image, heat-map included, as in production) on this machine."""
    from ml_core import data, evaluate
    from ml_core.serve import load_predictor as load_onnx_predictor

    metrics = scored.to_dict()
    probs, labels = scored.probabilities, scored.labels
    metrics["per_class_recall"] = {c: v["recall"] for c, v in metrics["per_class"].items()}
    metrics["roc"] = evaluate.roc_points(probs, labels, metrics["classes"])
    metrics["calibration"] = {"ece": metrics["ece"], **evaluate.reliability_bins(probs, labels)}
    predictor = load_onnx_predictor(package_dir, intra_op_threads=settings.DEEPMED_INFERENCE_THREADS)
    sample = [data.load_pixels(s.path) for s in data.load_dataset(holdout).samples[:LATENCY_SAMPLE]]
    metrics["latency_ms"] = evaluate.single_image_latency_ms(predictor, sample)
    return metrics
