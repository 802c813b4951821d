"""Benchmark: one-row tabular risk predictions through the API, against the in-process figures.

    OMP_NUM_THREADS=1 .venv/bin/python deploy/tools/bench_tabular_predict.py \\
        [--data ../shared/data/tabular/heart_disease/heart_cleveland.csv] [--algorithm random_forest] \\
        [--requests 200] [--top 3] [--json out.json]

The issue's target: "predictions for one row take under 20 ms through the API". A small champion
is set up the product's way in a throw-away folder (SQLite, embedded settings): an admin uploads
the table (the Cleveland heart CSV when ../shared/data/tabular is there, else a generated one;
`--synthetic` forces it), an experiment with one algorithm on the quick grid runs in this process
(execute_experiment, the worker's body) and is promoted. Then a physician with a real JWT access
token sends `--requests` one-row `POST /api/v1/tabular/models/{name}/predict` through Django's test
client (the whole middleware, DRF authentication, permission, audit row and JSON rendering; no
socket), each a different row of the table. For comparison, on the same rows: `services.predict`
(roles, model lookup, schema check, prediction, audit) and the model's own `predict` (schema check
and pipeline) with and without the top contributing features. The first request (the model
loaded and its sha256 verified from disk) is reported on its own, not in the percentiles.

Prints the figures and the ratios (API / services.predict, API / the model alone); `--json`
writes them too.
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
HEART = REPO.parent / "shared" / "data" / "tabular" / "heart_disease" / "heart_cleveland.csv"
TARGET_MS = 20.0

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patient_client import percentiles  # noqa: E402  (a sibling script, not a package)


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    """The load tools' nearest-rank p50/p95/p99 (patient_client.percentiles) and the mean, in ms."""
    mean = round(sum(seconds) / len(seconds) * 1000, 2) if seconds else None
    return {**percentiles(seconds), "mean": mean}


def timed(fn, rows: list[dict]) -> list[float]:
    out = []
    for row in rows:
        started = time.perf_counter()
        fn(row)
        out.append(time.perf_counter() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HEART), help="CSV with a `target` column (default: Cleveland heart)")
    parser.add_argument("--synthetic", action="store_true", help="a generated table instead (ml_core.tabular.testing)")
    parser.add_argument("--rows", type=int, default=300, help="rows of the generated table")
    parser.add_argument("--algorithm", default="random_forest")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=3, help="top contributing features (the API's default: 3)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="then cProfile the API requests and print the N heaviest calls (cumulative)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="deepmed-bench-tabular-"))
    os.environ["DEEPMED_DATA_DIR"] = str(work)
    for name in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "DEEPMED_MODEL_DIR", "MEDIA_ROOT"):
        os.environ.pop(name, None)  # embedded defaults inside the throw-away folder
    os.environ["DEEPMED_TABULAR_TRACKING"] = "false"  # MLflow is not what is measured
    for gate in ("F1_FLOOR", "ROC_AUC_FLOOR"):
        os.environ[f"DEEPMED_TABULAR_GATE_{gate}"] = "0"
    os.environ["DEEPMED_TABULAR_GATE_CV_STD_CEILING"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepmed_web.settings")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    import pandas as pd
    from django.core.management import call_command
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.accounts.models import Role
    from apps.accounts.services import create_user
    from apps.tabular import selectors, services
    from ml_core.tabular.testing import make_frame

    call_command("migrate", verbosity=0)
    admin = create_user(username="bench-admin", password="bench-password-1", role=Role.ADMIN)
    physician = create_user(username="bench-physician", password="bench-password-1", role=Role.PHYSICIAN)

    data_path = Path(args.data)
    if args.synthetic or not data_path.is_file():
        frame, source = make_frame(args.rows, seed=1), f"generated ({args.rows} rows)"
    else:
        frame, source = pd.read_csv(data_path), data_path.name
    dataset = services.upload_dataset(
        actor=admin, name="bench risk", data=frame.to_csv(index=False).encode(), target="target"
    )
    config = {"target": "target", "grid": "quick", "folds": 3, "permutation_repeats": 1,
              "algorithms": [args.algorithm]}  # fmt: skip
    started = time.perf_counter()
    experiment = services.start_experiment(actor=admin, dataset=dataset, config=config)
    experiment = services.execute_experiment(experiment.pk)
    train_s = time.perf_counter() - started
    if experiment is None or experiment.status != "succeeded":
        print(f"experiment {getattr(experiment, 'status', None)}: {getattr(experiment, 'error', '')}")
        return 1
    services.promote_experiment(actor=admin, experiment=experiment)
    name = experiment.model_name
    print(f"champion {name} v{experiment.model_version}: {experiment.chosen_algorithm} on {source}, "
          f"trained in {train_s:.1f} s", flush=True)  # fmt: skip

    inputs = [c["name"] for c in services.load_experiment_model(experiment).schema["columns"]]
    records = frame[inputs].astype(object).where(frame[inputs].notna(), None).to_dict("records")
    rows = [records[i % len(records)] for i in range(args.requests)]

    client = APIClient(HTTP_HOST="localhost")  # one of the default ALLOWED_HOSTS
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(physician)}")
    url = f"/api/v1/tabular/models/{name}/predict"

    def api(row: dict) -> None:
        response = client.post(url, row, format="json")
        if response.status_code != 200:
            raise SystemExit(f"predict answered {response.status_code}: {response.content[:300]!r}")

    services._load.cache_clear()  # the first request loads the model and checks its sha256
    first_s = timed(api, rows[:1])[0]
    api_s = timed(api, rows)
    champion = selectors.get_champion(name)
    service_s = timed(lambda row: services.predict(actor=physician, experiment=champion, rows=row), rows)
    model = services.load_experiment_model(champion)
    model_top_s = timed(lambda row: model.predict(row, top=args.top), rows)
    model_bare_s = timed(lambda row: model.predict(row, top=0), rows)

    figures = {
        "source": source,
        "algorithm": experiment.chosen_algorithm,
        "input_columns": len(inputs),
        "requests": args.requests,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "first_request_ms": round(first_s * 1000, 2),
        "api_ms": percentiles_ms(api_s),
        "services_predict_ms": percentiles_ms(service_s),
        "model_predict_top_ms": percentiles_ms(model_top_s),
        "model_predict_no_contributions_ms": percentiles_ms(model_bare_s),
        "target_ms": TARGET_MS,
    }
    api_p50, service_p50 = figures["api_ms"]["p50"], figures["services_predict_ms"]["p50"]
    model_p50 = figures["model_predict_top_ms"]["p50"]
    figures["api_over_services"] = round(api_p50 / service_p50, 2)
    figures["api_over_model"] = round(api_p50 / model_p50, 2)
    figures["under_target"] = api_p50 < TARGET_MS
    print(f"first request (model loaded, sha256 checked): {figures['first_request_ms']} ms")
    for label, key in (
        ("API POST (one row)", "api_ms"),
        ("services.predict", "services_predict_ms"),
        (f"model.predict top={args.top}", "model_predict_top_ms"),
        ("model.predict top=0", "model_predict_no_contributions_ms"),
    ):
        f = figures[key]
        print(f"  {label:<26} p50 {f['p50']:>7} ms   p95 {f['p95']:>7} ms   mean {f['mean']:>7} ms")
    print(f"API / services.predict {figures['api_over_services']}x, API / model {figures['api_over_model']}x; "
          f"target p50 < {TARGET_MS:.0f} ms: {'met' if figures['under_target'] else 'NOT met'}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(timed, api, rows)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
