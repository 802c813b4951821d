"""Latency benchmark: start DeepMed on loopback in one mode, replay real chest X-rays at a fixed
open-loop rate, and report server-side upload → prediction percentiles and throughput.

    .venv/bin/python deploy/tools/bench_latency.py --mode embedded --rate 2 --count 120
    DATABASE_URL=postgres://... REDIS_URL=redis://... \\
        .venv/bin/python deploy/tools/bench_latency.py --mode services --rate 10 --count 300
    ... --mode services --web-processes 2 --inference-workers 2   # `manage.py serve --processes 2`, two inference workers
    .venv/bin/python deploy/tools/bench_latency.py --mode embedded --with-training quick

With `--with-training TIER` an admin starts a training run (the default warm start from the
champion, on the base dataset) before the replay, the replay begins once the run takes steps,
and the report says how many training steps it took during the replay: latency with a training
run in progress, and whether that run still advances.

Latency is read from the stored timestamps the study API returns (study `created_at` →
prediction `queued_at` / `started_at` / `finished_at`), so the client's polling granularity does
not enter it. The server runs on a fresh data folder (embedded: its own SQLite, media and the
starter model; services: the databases named by DATABASE_URL / REDIS_URL, migrated, the starter
model installed if none is deployed, one `celery worker` per queue group as in production, those
without `inference` at niceness BACKGROUND_NICE).
Prints a human summary, then the report as JSON on the last line with `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patient_client import PatientClient, folder_images, percentiles

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FOLDER = ROOT.parent / "shared" / "data" / "cxr" / "test"
# services mode: one worker per queue group, the embedded mode's consumers as separate processes.
BENCH_THROTTLES = {
    "DEEPMED_THROTTLE_UPLOAD_IP": "1000000/hour",
    "DEEPMED_THROTTLE_UPLOAD_ACCOUNT": "1000000/hour",
    "DEEPMED_THROTTLE_AUTH_IP": "10000/min",
    "DEEPMED_THROTTLE_AUTH_ACCOUNT": "10000/min",
}
SERVICE_WORKERS = (("inference",), ("llm", "default"), ("training", "augmentation"))
# Workers without `inference` run at this niceness, as embedded mode's consumers do
# (DEEPMED_EMBEDDED_BACKGROUND_NICE) and deploy/docker-compose.yml's background worker: on a
# shared host an explanation (~0.3 s of CPU each) or a training step otherwise takes the cores
# the uploads' predictions wait for.
BACKGROUND_NICE = 10


def worker_argv(group: tuple[str, ...], python: str = sys.executable, index: int = 0) -> list[str]:
    """The `celery worker` command of one queue group in services mode (solo pool, one process);
    `index` tells apart several workers of one group (their node names must differ)."""
    name = "-".join(group) + (f"-{index}" if index else "")
    argv = [python, "-m", "celery", "-A", "deepmed_web", "worker", "-P", "solo", "-Q", ",".join(group)]
    argv += ["-n", f"bench-{name}@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    return argv if "inference" in group else ["nice", "-n", str(BACKGROUND_NICE), *argv]


NOT_A_CHEST_XRAY = "not_a_chest_xray"  # apps.studies' failure code for the OOD gate's refusal


def succeeded(report: dict) -> bool:
    """Every upload ended as designed: predicted, or refused by the OOD gate (the exit status)."""
    return report["not_predicted"] == report["refused_not_a_chest_xray"]


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def server_timing(body: dict) -> dict:
    """Seconds from the study's creation to each stored step of its prediction (None if absent)."""
    created = parse_time(body.get("created_at"))
    prediction = body.get("prediction") or {}
    timing = {
        "status": body.get("status"),
        "created_at": body.get("created_at"),
        "error_code": (body.get("error") or {}).get("code"),
    }
    for key in ("queued_at", "started_at", "finished_at"):
        stamp = parse_time(prediction.get(key))
        timing[key.replace("_at", "_s")] = (stamp - created).total_seconds() if stamp and created else None
    explanation = body.get("explanation") or {}
    for key, name in (("started_at", "explanation_started_s"), ("created_at", "explained_s")):
        stamp = parse_time(explanation.get(key))
        timing[name] = (stamp - created).total_seconds() if stamp and created else None
    return timing


def summarise(timings: list[dict], *, elapsed_s: float, rate: float) -> dict:
    """Server-side percentiles (ms) of upload → prediction (created → finished), queue wait
    (queued → started), service (started → finished) and upload → explanation, and the throughput: predictions per
    second between the first upload and the last prediction stored."""
    done = [t for t in timings if t.get("finished_s") is not None]
    waits = [t["started_s"] - t["queued_s"] for t in done if t.get("started_s") is not None and t.get("queued_s")]
    service = [t["finished_s"] - t["started_s"] for t in done if t.get("started_s") is not None]
    span = 0.0
    created = sorted(parse_time(t["created_at"]).timestamp() for t in timings if t.get("created_at"))
    if done:
        finished = [parse_time(t["created_at"]).timestamp() + t["finished_s"] for t in done]
        span = max(finished) - min(created)
    # Uploads per second the server actually took (first to last study created): below `rate`
    # when the client could not keep the open loop (every --max-in-flight thread still following
    # a study, e.g. waiting ~20 s for explanations), and then the latencies are at that lower rate.
    upload_span = created[-1] - created[0] if len(created) > 1 else 0.0
    achieved = round((len(created) - 1) / upload_span, 2) if upload_span > 0 else None
    return {
        "uploads": len(timings),
        "predicted": len(done),
        "not_predicted": len(timings) - len(done),
        # the out-of-distribution gate's answer to a real image it judged no chest X-ray: the study
        # ran the whole inference and ended as designed, so it is not counted as lost
        "refused_not_a_chest_xray": sum(t.get("error_code") == NOT_A_CHEST_XRAY for t in timings),
        "statuses": dict(sorted(Counter(t.get("status") or "no_answer" for t in timings).items())),
        "rate_per_s": rate,
        "upload_rate_achieved_per_s": achieved,
        "elapsed_s": round(elapsed_s, 2),
        "upload_to_prediction_ms": percentiles([t["finished_s"] for t in done]),
        "queue_wait_ms": percentiles(waits),
        "service_ms": percentiles(service),
        # only meaningful with --wait-explanation (otherwise studies are read before most are explained)
        "explained": sum(t.get("explained_s") is not None for t in timings),
        "upload_to_explanation_ms": percentiles(
            [t["explained_s"] for t in timings if t.get("explained_s") is not None]
        ),
        # prediction stored -> an explanation worker took the study
        "explanation_queue_wait_ms": percentiles(
            [
                t["explanation_started_s"] - t["finished_s"]
                for t in timings
                if t.get("explanation_started_s") is not None and t.get("finished_s") is not None
            ]
        ),
        "throughput_per_s": round(len(done) / span, 2) if span > 0 else None,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """DeepMed in one mode on loopback, with its own data folder; stopped on exit."""

    def __init__(
        self, mode: str, port: int, data_dir: Path, log_dir: Path, *, web_processes: int = 1, inference_workers: int = 1
    ):
        self.mode, self.port, self.procs = mode, port, []
        # `manage.py serve --processes N` (services mode only) and N `celery worker -Q inference`
        if mode == "embedded" and (web_processes, inference_workers) != (1, 1):
            raise SystemExit("--web-processes and --inference-workers above 1 need --mode services")
        self.web_processes, self.inference_workers = web_processes, inference_workers
        self.env = {**os.environ, "DEEPMED_DATA_DIR": str(data_dir), "MLFLOW_DISABLE_TELEMETRY": "true"}
        # Every upload comes from loopback and a few accounts: lift the per-IP/account limits.
        for name, rate in BENCH_THROTTLES.items():
            self.env.setdefault(name, rate)
        if mode == "embedded":
            for name in ("REDIS_URL", "DATABASE_URL"):
                self.env.pop(name, None)
        elif not (self.env.get("REDIS_URL") and self.env.get("DATABASE_URL")):
            raise SystemExit("services mode needs DATABASE_URL (PostgreSQL) and REDIS_URL")
        self.log_dir = log_dir

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True)

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the process's life)
        self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def __enter__(self) -> Server:
        self.manage("migrate", "--noinput")
        self.manage("install_starter_model")
        try:
            web = [sys.executable, "manage.py", "serve", "--port", str(self.port)]
            self.spawn("web", [*web, "--processes", str(self.web_processes)])
            if self.mode == "services":
                for group in SERVICE_WORKERS:
                    for index in range(self.inference_workers if group == ("inference",) else 1):
                        self.spawn(f"worker-{'-'.join(group)}-{index}", worker_argv(group, index=index))
            self.wait_ready()
        except BaseException:  # never ready (or interrupted): `with` will not call __exit__, stop them here
            self.__exit__()
            raise
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise SystemExit(f"a server process exited; see {self.log_dir}")
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"the server was not ready within {timeout:g} s; see {self.log_dir}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


class TrainingLoad:
    """An admin's training run on the server, started before the replay (see --with-training)."""

    def __init__(self, server: Server, tier: str, architecture: str):
        import httpx

        password = secrets.token_urlsafe(18)
        server.manage("create_user", "--role", "admin", "--username", "bench-admin", "--password", password)
        self.http = httpx.Client(base_url=server.base_url + "/api/v1", timeout=60)
        token = self._ok(self.http.post("/auth/token", json={"username": "bench-admin", "password": password}))
        self.http.headers["Authorization"] = f"Bearer {token['access']}"
        run = self._ok(self.http.post("/training-runs", json={"architecture": architecture, "tier": tier}))
        self.run_id = run["id"]

    @staticmethod
    def _ok(response) -> dict:
        if response.status_code >= 400:
            raise SystemExit(f"training run: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def run(self) -> dict:
        return self._ok(self.http.get(f"/training-runs/{self.run_id}"))

    @staticmethod
    def steps_done(run: dict) -> int:
        """Optimiser steps taken so far, from the run's progress (epoch counts from 1)."""
        progress = run.get("progress") or {}
        epoch, step = int(progress.get("epoch") or 0), int(progress.get("step") or 0)
        return max(0, epoch - 1) * int(progress.get("steps_per_epoch") or 0) + step

    def wait_stepping(self, timeout: float = 900.0) -> dict:
        """Until the run takes optimiser steps (dataset loading and the model build come first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run()
            if run["status"] not in ("queued", "running"):
                raise SystemExit(f"the training run ended before the replay: {run['status']} {run.get('error', '')}")
            if self.steps_done(run) > 0:
                return run
            time.sleep(2.0)
        raise SystemExit(f"the training run took no step within {timeout:g} s")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's shape in services mode (also load_test.py's, when it starts the server)."""
    parser.add_argument(
        "--web-processes", type=int, default=1, help="Daphne processes: `manage.py serve --processes N` (services)"
    )
    parser.add_argument(
        "--inference-workers", type=int, default=1, help="`celery worker -Q inference` processes (services)"
    )


def warm_up_workers(base_url: str, images: list[Path], timeout: float = 180.0) -> bool:
    """Services mode: /health/ready speaks for the web process only, while each worker loads its
    models in a thread of its own after it starts; the first explanation of a run then waited ~3 s
    for the explainer's load and its backlog held the next twenty back. Like embedded mode's
    readiness (`warm`), follow one study (of a patient outside the replay) to its explanation
    before timing; not in the report. True once one was explained (the OOD gate may refuse one)."""
    client = PatientClient(base_url)
    try:
        client.sign_up()
        for path in images[:5]:
            body, started = client.upload(path.read_bytes(), path.name)
            if client.follow(body["id"], started, wait_explanation=True, timeout=timeout).explained_s is not None:
                return True
        return False
    finally:
        client.close()


def replay(base_url: str, images: list[Path], args) -> tuple[list[dict], float]:
    """Upload `args.count` images at `args.rate` per second (open loop: arrivals do not wait for
    answers) spread over `args.patients` patients; follow each study until predicted (or final)."""
    clients = [PatientClient(base_url) for _ in range(args.patients)]
    for client in clients:
        client.sign_up()
    lock, timings = threading.Lock(), []

    def one(i: int) -> None:
        path, client = images[i % len(images)], clients[i % len(clients)]
        body, started = client.upload(path.read_bytes(), path.name)
        line = client.follow(body["id"], started, wait_explanation=args.wait_explanation, timeout=args.timeout)
        response = client.http.get(f"/studies/{body['id']}")
        final = response.json() if response.status_code == 200 else {"status": f"http_{response.status_code}"}
        timing = server_timing(final)
        timing["explained_client_s"] = line.explained_s
        with lock:
            timings.append(timing)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.max_in_flight) as pool:
        futures = []
        for i in range(args.count):
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            futures.append(pool.submit(one, i))
        errors = [f.exception() for f in futures if f.exception() is not None]
    for client in clients:
        client.close()
    if errors:
        print(f"{len(errors)} client errors, first: {errors[0]}", file=sys.stderr)
    return timings, time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("embedded", "services"), default="embedded")
    parser.add_argument("--folder", default=str(DEFAULT_FOLDER), help="<LABEL>/<image> tree of real X-rays")
    parser.add_argument("--rate", type=float, default=2.0, help="uploads per second (open loop)")
    parser.add_argument("--count", type=int, default=60, help="uploads in all")
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--wait-explanation", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to follow one study")
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--data-dir", default="", help="the server's data folder (default: a fresh temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    parser.add_argument(
        "--with-training",
        metavar="TIER",
        choices=("quick", "standard", "full"),
        help="replay while an admin's training run of this tier is in progress",
    )
    parser.add_argument("--training-architecture", default="tf_efficientnet_lite0")
    add_server_arguments(parser)
    args = parser.parse_args(argv)

    images = folder_images(Path(args.folder))
    if not images:
        raise SystemExit(f"no <LABEL>/<image> files under {args.folder}")
    random.Random(args.seed).shuffle(images)
    with tempfile.TemporaryDirectory(prefix="deepmed-bench-") as tmp:
        data_dir = Path(args.data_dir or Path(tmp) / "data")
        data_dir.mkdir(parents=True, exist_ok=True)
        with Server(
            args.mode,
            args.port or free_port(),
            data_dir,
            Path(tmp),
            web_processes=args.web_processes,
            inference_workers=args.inference_workers,
        ) as server:
            training = (
                TrainingLoad(server, args.with_training, args.training_architecture) if args.with_training else None
            )
            if args.mode == "services" and not warm_up_workers(server.base_url, images):
                print("warning: no warm-up study was explained; the workers may start cold", file=sys.stderr)
            before = training.wait_stepping() if training else None
            timings, elapsed = replay(server.base_url, images, args)
            after = training.run() if training else None
    report = {
        "mode": args.mode,
        "web_processes": args.web_processes,
        "inference_workers": args.inference_workers,
        **summarise(timings, elapsed_s=elapsed, rate=args.rate),
    }
    if training:
        report["training"] = {
            "tier": args.with_training,
            "status_after": after["status"],
            "steps_during_replay": TrainingLoad.steps_done(after) - TrainingLoad.steps_done(before),
            "progress_after": {
                k: (after.get("progress") or {}).get(k) for k in ("epoch", "epochs", "step", "steps_per_epoch")
            },
        }
    lat = report["upload_to_prediction_ms"]
    achieved = report["upload_rate_achieved_per_s"]
    if achieved is not None and achieved < 0.9 * args.rate:
        print(
            f"warning: the server took uploads at {achieved:g}/s, not {args.rate:g}/s: the client's "
            f"{args.max_in_flight} threads were all following studies (raise --max-in-flight)",
            file=sys.stderr,
        )
    print(
        f"{args.mode}: {report['predicted']}/{report['uploads']} predicted "
        f"({report['refused_not_a_chest_xray']} refused as not a chest X-ray) at {args.rate:g}/s; upload → prediction "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; throughput {report['throughput_per_s']}/s"
    )
    if args.wait_explanation:
        exp = report["upload_to_explanation_ms"]
        wait = report["explanation_queue_wait_ms"]
        print(
            f"  {report['explained']} explained; upload → explanation p50 {exp['p50']} ms, p95 {exp['p95']} ms "
            f"(waiting for an explanation worker p50 {wait['p50']} ms, p95 {wait['p95']} ms)"
        )
    if training:
        t = report["training"]
        print(
            f"  training run ({t['tier']}) took {t['steps_during_replay']} steps during the replay; after: {t['status_after']} {t['progress_after']}"
        )
    if args.json:
        print(json.dumps(report))
    return 0 if succeeded(report) else 1


if __name__ == "__main__":
    sys.exit(main())
