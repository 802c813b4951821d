"""The load/simulation scripts' own arithmetic (they are run by hand against a server; see README)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

TOOLS = Path(__file__).resolve().parents[2] / "deploy" / "tools"


def _load(name: str):
    import sys

    sys.path.insert(0, str(TOOLS))
    try:
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TOOLS))


def test_percentiles_are_nearest_rank_in_milliseconds():
    client = _load("patient_client")
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert client.percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert client.percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_simulator_summary_counts_accuracy_on_predicted_studies_only(tmp_path):
    sim = _load("simulate_traffic")
    Timeline = sim.Timeline
    results = [
        ("NORMAL", Timeline("a", "explained", 0.1, 1.0, 2.0, 2.0, "NORMAL")),
        ("COVID-19", Timeline("b", "explained", 0.1, 1.5, 2.5, 2.5, "COVID19")),
        ("PNEUMONIA", Timeline("c", "explained", 0.1, 1.2, 2.2, 2.2, "NORMAL")),
        ("NORMAL", Timeline("d", "failed", 0.1, None, None, 0.5, None)),
    ]
    report = sim.summarise(results, elapsed_s=3.0)
    assert report["accuracy"] == round(2 / 3, 3) and report["predicted"] == 3
    assert report["statuses"] == {"explained": 3, "failed": 1}
    for cls in ("NORMAL", "PNEUMONIA"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.png").write_bytes(b"")
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    assert [label for label, _ in sim.labelled_images(tmp_path)] == ["NORMAL", "PNEUMONIA"]


@pytest.mark.slow
def test_retraining_benchmark_runs_the_product_path_and_reports_gates(tmp_path):
    """bench_retraining on tiny generated data: a real run through execute_training_run, then the gates."""
    import json
    import os
    import subprocess
    import sys

    from apps.modelops.testing import write_tiny_dataset
    from ml_core.testing import make_tiny_package

    data = write_tiny_dataset(tmp_path / "data")
    champion = make_tiny_package(tmp_path / "champion")
    env = {
        **os.environ,
        "DEEPMED_BASE_DATASET_DIR": str(data),
        "DEEPMED_RETRAIN_ARCHITECTURE": "cxr_tiny",
        "DEEPMED_PACKAGE_FORMAT": "fp32",
        "DEEPMED_OOD_METHOD": "mahalanobis",
    }
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "bench_retraining.py"),
            "--champion",
            str(champion),
            "--threads",
            "1",
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert figures["tier"] == "quick" and figures["epochs_run"] >= 1
    assert figures["initialisation"]["requested"] == "champion"
    assert figures["initialisation"]["kind"] == "random"  # the tiny champion has no torch weights to start from
    assert 0 < figures["train_seconds"] <= figures["total_seconds"]
    names = {g["name"] for g in figures["gates"]}
    assert {"macro_f1_floor", "macro_f1_vs_champion", "class_recall_floor"} <= names
    assert figures["gates_passed"] == all(g["passed"] for g in figures["gates"])
    assert "gate macro_f1_floor" in proc.stdout


def _study(
    created: str,
    queued: str | None,
    started: str | None,
    finished: str | None,
    status="predicted",
    explained=None,
    explanation_started=None,
) -> dict:
    day = "2026-12-01T10:00:"
    prediction = None
    if finished:
        prediction = {
            "queued_at": day + queued + "Z",
            "started_at": day + started + "Z",
            "finished_at": day + finished + "Z",
        }
    explanation = None
    if explained:
        explanation = {"text": "…", "engine": "template", "created_at": day + explained + "Z", "started_at": None}
        if explanation_started:
            explanation["started_at"] = day + explanation_started + "Z"
    return {"status": status, "created_at": day + created + "Z", "prediction": prediction, "explanation": explanation}


def test_latency_benchmark_reads_server_timestamps_and_summarises_them():
    bench = _load("bench_latency")
    timing = bench.server_timing(_study("00.000000", "00.010000", "00.030000", "00.130000"))
    assert timing["queued_s"] == pytest.approx(0.01) and timing["started_s"] == pytest.approx(0.03)
    assert timing["finished_s"] == pytest.approx(0.13) and timing["status"] == "predicted"
    failed = bench.server_timing(_study("01.000000", None, None, None, status="failed"))
    assert failed["finished_s"] is None and failed["error_code"] is None

    timings = [
        timing,
        bench.server_timing(_study("01.000000", "01.020000", "01.120000", "01.300000")),
        bench.server_timing(
            _study(
                "02.000000",
                "02.010000",
                "02.020000",
                "03.000000",
                explained="04.500000",
                explanation_started="04.200000",
            )
        ),
        failed,
    ]
    assert timings[0]["explained_s"] is None and timings[2]["explained_s"] == pytest.approx(2.5)
    report = bench.summarise(timings, elapsed_s=3.5, rate=1.0)
    assert (report["uploads"], report["predicted"], report["not_predicted"]) == (4, 3, 1)
    assert report["statuses"] == {"failed": 1, "predicted": 3}
    assert report["refused_not_a_chest_xray"] == 0 and not bench.succeeded(report)  # a failure is lost work
    refused = bench.server_timing(  # the OOD gate's designed answer
        {**_study("01.000000", None, None, None, status="failed"), "error": {"code": "not_a_chest_xray"}}
    )
    assert bench.succeeded(bench.summarise([*timings[:3], refused], elapsed_s=3.5, rate=1.0))
    assert report["upload_to_prediction_ms"] == {"p50": 300.0, "p95": 1000.0, "p99": 1000.0}
    assert report["queue_wait_ms"] == {"p50": 20.0, "p95": 100.0, "p99": 100.0}
    assert report["service_ms"] == {"p50": 180.0, "p95": 980.0, "p99": 980.0}
    assert report["explained"] == 1 and report["upload_to_explanation_ms"]["p50"] == 2500.0
    assert report["explanation_queue_wait_ms"]["p50"] == 1200.0  # prediction stored at 03 s, taken at 04.2 s
    assert report["throughput_per_s"] == 1.0  # 3 predictions from the first upload (00 s) to the last stored (03 s)
    empty = bench.summarise([], elapsed_s=0.0, rate=1.0)
    assert empty["predicted"] == 0 and empty["throughput_per_s"] is None
    assert empty["upload_to_prediction_ms"]["p50"] is None


def test_latency_benchmark_counts_training_steps_across_epochs_from_the_run_progress():
    steps_done = _load("bench_latency").TrainingLoad.steps_done
    assert steps_done({"progress": {}}) == 0  # queued: nothing reported yet
    assert steps_done({"progress": {"epoch": 1, "step": 7, "steps_per_epoch": 58}}) == 7
    assert steps_done({"progress": {"epoch": 3, "step": 2, "steps_per_epoch": 58}}) == 2 * 58 + 2
    assert steps_done({"progress": None}) == 0


def test_load_test_deals_real_images_round_the_patients_and_makes_a_reused_png_distinct(tmp_path):
    import io
    from types import SimpleNamespace

    from PIL import Image

    load = _load("load_test")
    for i, label in enumerate(["NORMAL", "PNEUMONIA", "NORMAL"]):
        (tmp_path / label).mkdir(exist_ok=True)
        Image.fromarray(np.full((16, 16), 40 * (i + 1), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    images = load.folder_images(tmp_path, load.PNG_ONLY)
    assert [p.name for p in images] == ["0.png", "2.png", "1.png"]
    args = SimpleNamespace(images=images, patients=2, image_size=64)

    first_lap = [load.upload_bytes(args, 0, 0), load.upload_bytes(args, 1, 0)]
    assert first_lap == [images[0].read_bytes(), images[1].read_bytes()]  # disjoint, unchanged
    again = load.upload_bytes(args, 0, 2)  # position 4: the folder's second lap
    assert again != images[1].read_bytes()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(again))), np.asarray(Image.open(images[1])))
    assert load.upload_bytes(args, 1, 2) != load.upload_bytes(args, 0, 2)  # other patient, other bytes
    with pytest.raises(ValueError):
        load.distinct_png(b"GIF89a", "x")


def test_tabular_predict_benchmark_times_the_api_services_and_model(tmp_path):
    """bench_tabular_predict on a generated table: a champion set up the product's way, then timed requests."""
    import json
    import subprocess
    import sys

    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "bench_tabular_predict.py"), "--synthetic", "--rows", "120"]
        + ["--requests", "4", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert figures["source"] == "generated (120 rows)" and figures["requests"] == 4
    for key in ("api_ms", "services_predict_ms", "model_predict_top_ms", "model_predict_no_contributions_ms"):
        assert 0 < figures[key]["p50"] <= figures[key]["p99"]
    assert figures["under_target"] == (figures["api_ms"]["p50"] < figures["target_ms"])
    assert "API POST (one row)" in proc.stdout


def _status_server(statuses, *, close_code=None):
    """A loopback WebSocket server that sends each status as the study consumer does (or closes
    with `close_code`), and the Authorization header it was given."""
    import json
    import threading

    from websockets.sync.server import serve

    seen = {}

    def handler(socket):
        seen["authorization"] = socket.request.headers.get("Authorization")
        seen["path"] = socket.request.path
        if close_code is not None:
            socket.close(close_code)
            return
        for status in statuses:
            socket.send(json.dumps({"type": "study.status", "status": status}))
        socket.recv()  # stay open until the client leaves

    server = serve(handler, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def _client_with_api(module, port, answers):
    """A PatientClient whose API calls are answered from `answers` (one per GET), counting them."""
    import httpx

    gets = []

    def api(request):
        gets.append(request.url.path)
        return httpx.Response(200, json=answers[min(len(gets), len(answers)) - 1])

    client = module.PatientClient(f"http://127.0.0.1:{port}")
    client.http = httpx.Client(base_url="http://testserver/api/v1", transport=httpx.MockTransport(api))
    client.http.headers["Authorization"] = "Bearer t0ken"
    return client, gets


def test_follow_listens_on_the_study_socket_and_reads_the_api_once_at_the_end():
    module = _load("patient_client")
    server, seen = _status_server(["queued", "predicted", "explaining", "explained"])
    try:
        final = {"status": "explained", "prediction": {"label": "NORMAL"}, "explanation": {"text": "..."}}
        client, gets = _client_with_api(module, server.socket.getsockname()[1], [final])
        line = client.follow("abc", started=0.0, wait_explanation=True, timeout=10)
    finally:
        server.shutdown()
    assert seen == {"authorization": "Bearer t0ken", "path": "/ws/studies/abc/"}
    assert line.statuses == ["queued", "predicted", "explaining", "explained"]
    assert line.label == "NORMAL" and line.predicted_s <= line.explained_s == line.final_s
    assert gets == ["/api/v1/studies/abc"] and client.socket_fallbacks == 0


def test_follow_falls_back_to_polling_with_back_off_when_the_socket_is_refused(monkeypatch):
    module = _load("patient_client")
    server, _ = _status_server([], close_code=4401)
    import threading
    import time

    sleeps, real_sleep, this_thread = [], time.sleep, threading.current_thread()
    following = threading.Event()

    def sleep(seconds):  # `time` is shared: other threads (the socket server's, the suite's) really sleep
        if following.is_set() and threading.current_thread() is this_thread:
            sleeps.append(seconds)
        else:  # also the server's shutdown below, which polls with time.sleep(0.1) on this thread
            real_sleep(seconds)

    monkeypatch.setattr(module.time, "sleep", sleep)
    try:
        waiting, done = {"status": "queued"}, {"status": "predicted", "prediction": {"label": "COVID-19"}}
        client, gets = _client_with_api(module, server.socket.getsockname()[1], [waiting] * 4 + [done])
        following.set()
        line = client.follow("abc", started=0.0, wait_explanation=False, timeout=60)
    finally:
        following.clear()
        server.shutdown()
    assert client.socket_fallbacks == 1 and len(gets) == 5
    assert line.status == "predicted" and line.label == "COVID-19"
    assert sleeps == [0.25, 0.375, 0.5625, 0.84375]  # backing off, not a fixed 4 requests a second


def test_latency_benchmark_services_mode_runs_background_workers_niced():
    """Services mode as deployed: only the inference worker at the default priority, the others
    (explanations, training) at BACKGROUND_NICE, as embedded mode's consumers."""
    bench = _load("bench_latency")
    argvs = {group: bench.worker_argv(group, python="py") for group in bench.SERVICE_WORKERS}
    assert argvs[("inference",)][:3] == ["py", "-m", "celery"]
    assert argvs[("inference",)][argvs[("inference",)].index("-Q") + 1] == "inference"
    for group, argv in argvs.items():
        if "inference" not in group:
            assert argv[:4] == ["nice", "-n", "10", "py"], argv
            assert argv[argv.index("-Q") + 1] == ",".join(group)


def test_latency_benchmark_reports_the_upload_rate_the_server_took():
    """With --wait-explanation every client thread follows its study for ~20 s: 64 of them took
    3 uploads/s of the 10 asked, and the report's latencies were those of 3/s."""
    bench = _load("bench_latency")
    timings = [
        bench.server_timing(_study(f"{i:02d}.000000", f"{i:02d}.010000", f"{i:02d}.020000", f"{i:02d}.100000"))
        for i in range(0, 10, 2)
    ]
    report = bench.summarise(timings, elapsed_s=9.0, rate=2.0)
    assert report["upload_rate_achieved_per_s"] == 0.5
    assert bench.summarise(timings[:1], elapsed_s=1.0, rate=2.0)["upload_rate_achieved_per_s"] is None


def test_latency_benchmark_stops_what_it_started_when_the_server_never_gets_ready(tmp_path, monkeypatch):
    """`with Server(...)` never reaches __exit__ when __enter__ fails: the web and worker processes
    were left running."""
    import subprocess

    bench = _load("bench_latency")
    server = bench.Server("embedded", bench.free_port(), tmp_path / "data", tmp_path)
    monkeypatch.setattr(server, "manage", lambda *args: None)
    monkeypatch.setattr(server, "spawn", lambda name, argv: server.procs.append(subprocess.Popen(["sleep", "60"])))

    def never_ready() -> None:
        raise SystemExit("the server was not ready")

    monkeypatch.setattr(server, "wait_ready", never_ready)
    with pytest.raises(SystemExit, match="not ready"), server:
        pass
    assert server.procs and all(proc.poll() is not None for proc in server.procs)


def test_latency_benchmark_warms_services_workers_with_one_explained_study_before_timing(tmp_path, monkeypatch):
    from types import SimpleNamespace

    bench = _load("bench_latency")
    images = []
    for i in range(6):
        images.append(tmp_path / f"{i}.png")
        images[-1].write_bytes(b"png %d" % i)
    uploads: list[str] = []

    class FakeClient:
        explained_from = 2  # the first two are refused by the OOD gate

        def __init__(self, base_url):
            pass

        def sign_up(self):
            return "warm-up"

        def upload(self, data, filename):
            uploads.append(filename)
            return {"id": filename}, 0.0

        def follow(self, study_id, started, *, wait_explanation, timeout):
            assert wait_explanation
            return SimpleNamespace(explained_s=1.0 if len(uploads) > self.explained_from else None)

        def close(self):
            pass

    monkeypatch.setattr(bench, "PatientClient", FakeClient)
    assert bench.warm_up_workers("http://x", images) and uploads == ["0.png", "1.png", "2.png"]
    FakeClient.explained_from = 99
    uploads.clear()
    assert not bench.warm_up_workers("http://x", images) and len(uploads) == 5  # gives up after five


def test_latency_benchmark_starts_the_asked_web_processes_and_inference_workers(tmp_path, monkeypatch):
    """--web-processes N: `manage.py serve --processes N`; --inference-workers K: K inference
    workers with node names of their own (services mode only)."""
    bench = _load("bench_latency")
    monkeypatch.setenv("DATABASE_URL", "postgres://nowhere/db")
    monkeypatch.setenv("REDIS_URL", "redis://nowhere/0")
    server = bench.Server("services", 8123, tmp_path / "data", tmp_path, web_processes=3, inference_workers=2)
    spawned: dict[str, list[str]] = {}
    monkeypatch.setattr(server, "manage", lambda *args: None)
    monkeypatch.setattr(server, "spawn", lambda name, argv: spawned.setdefault(name, argv))
    monkeypatch.setattr(server, "wait_ready", lambda: None)
    with server:
        pass
    assert spawned["web"][-4:] == ["--port", "8123", "--processes", "3"]
    inference = [argv for name, argv in spawned.items() if name.startswith("worker-inference")]
    assert len(inference) == 2
    assert len({argv[argv.index("-n") + 1] for argv in inference}) == 2
    assert len(spawned) == 1 + 2 + len(bench.SERVICE_WORKERS) - 1
    with pytest.raises(SystemExit, match="need --mode services"):
        bench.Server("embedded", 8123, tmp_path / "data", tmp_path, web_processes=2)
