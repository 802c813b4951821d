"""Benchmark: one retraining run of the product, end to end, on this machine.

    .venv/bin/python deploy/tools/bench_retraining.py [--tier quick] [--init champion] \\
        [--champion ml_core/starter/cxr-starter] [--threads 2] [--json out.json]

It does what the beat trigger does on a CPU-only install: the champion (the shipped starter by
default) is registered, a run is queued with the product's defaults (architecture
DEEPMED_RETRAIN_ARCHITECTURE, the given tier and initialisation), and the training task's body
(`execute_training_run`) runs in this process: data export, fine-tuning, packaging (calibration,
served-format choice, OOD gate), MLflow run and registration, held-out evaluation. Then the
quality gates are checked against the champion with the default thresholds. It prints the wall
time of each phase, the held-out figures and each gate's verdict.

Needs the base dataset (DEEPMED_BASE_DATASET_DIR, default ../shared/data/cxr). Everything it
writes (SQLite database, MLflow store, packages) goes to a throw-away folder under /tmp.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="quick", choices=("quick", "standard", "full"))
    parser.add_argument("--init", default="champion", choices=("champion", "imagenet", "random"))
    parser.add_argument("--champion", default=str(REPO / "ml_core" / "starter" / "cxr-starter"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="deepmed-bench-retraining-"))
    os.environ["DEEPMED_DATA_DIR"] = str(work)
    for name in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "DEEPMED_MODEL_DIR", "MEDIA_ROOT"):
        os.environ.pop(name, None)  # embedded defaults inside the throw-away folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.modelops import services
    from apps.modelops.models import Trigger

    call_command("migrate", verbosity=0)
    champion = services.register_model_version(args.champion, alias="champion")
    run = services.start_training_run(
        architecture=settings.DEEPMED_RETRAIN_ARCHITECTURE,
        tier=args.tier,
        augmentation="light",
        initialisation=args.init,
        trigger=Trigger.NEW_LABELS,
        reason="bench_retraining",
        overrides={"num_threads": args.threads},
    )
    print(
        f"run {run.pk}: {run.params['architecture']}, tier {args.tier}, starts from {run.params['init']['label']}"
        + (f" ({run.params['init']['note']})" if run.params["init"]["note"] else ""),
        flush=True,
    )
    started = time.perf_counter()
    run = services.execute_training_run(run.pk)  # the Celery task's body, in this process
    total_s = time.perf_counter() - started
    if run.status != "succeeded":
        print(f"run {run.status}: {run.error}")
        return 1
    history = run.progress.get("history", [])
    train_s = sum(h.get("epoch_seconds", 0.0) for h in history)
    version = run.result_version
    gates = services.check_gates(version)  # evaluates the champion on the same held-out set too
    champion.refresh_from_db()
    version.refresh_from_db()
    held_out = version.evaluation
    figures = {
        "tier": args.tier,
        "initialisation": run.params["init"],
        "champion": f"{champion.registered_name} v{champion.version}",
        "epochs_run": len(history),
        "train_seconds": round(train_s, 1),
        "total_seconds": round(total_s, 1),
        "other_seconds": round(total_s - train_s, 1),  # data export, packaging, MLflow, evaluation
        "held_out": {k: held_out.get(k) for k in ("n", "accuracy", "macro_f1", "roc_auc_macro", "min_recall")},
        "champion_held_out": {k: champion.evaluation.get(k) for k in ("accuracy", "macro_f1")},
        "gates": [g.to_dict() for g in gates],
        "gates_passed": all(g.passed for g in gates),
        "under_15_min": total_s < 15 * 60,
    }
    print(
        f"epochs {len(history)}: training {train_s:.0f} s, everything else {total_s - train_s:.0f} s, "
        f"total {total_s / 60:.1f} min (target < 15 min: {'met' if figures['under_15_min'] else 'NOT met'})"
    )
    print(f"held-out: {json.dumps(figures['held_out'])}; champion: {json.dumps(figures['champion_held_out'])}")
    for gate in gates:
        print(
            f"  gate {gate.name:<24} {'pass' if gate.passed else 'FAIL'}  measured {gate.value}  "
            f"threshold {gate.threshold}"
        )
    print(f"gates: {'all passed' if figures['gates_passed'] else 'FAILED'}; work folder {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
