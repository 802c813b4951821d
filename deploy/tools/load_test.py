"""Load test: N concurrent patients upload (new, distinct images) for T seconds on loopback.

    .venv/bin/python deploy/tools/load_test.py --base-url http://127.0.0.1:8000 --patients 8 --seconds 60
    .venv/bin/python deploy/tools/load_test.py --folder ../shared/data/cxr/test --patients 20
    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python deploy/tools/load_test.py \\
        --serve services --web-processes 2 --folder ../shared/data/cxr/test --patients 20

Each patient is a thread (a bounded client: one study in flight per patient) that uploads a
generated chest-X-ray-like PNG (or, with --folder, real X-rays from a <LABEL>/<image> tree: the
generated ones are refused by a real model's out-of-distribution gate, after full inference),
follows it to a final state, and repeats until T is up.
With --serve MODE it starts DeepMed itself on loopback first, as bench_latency.py does (a fresh
data folder, migrations, the starter model, upload limits lifted; in services mode
`manage.py serve --processes --web-processes`, one Celery worker per queue group and
--inference-workers for inference, one study followed to its explanation to warm them).
Reports throughput, p50/p95/p99 upload → result latency, and checks that every study reached
a final state and that none was lost or duplicated (each patient's study list from the API
holds exactly the studies it uploaded, once each).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import bench_latency  # noqa: E402
from patient_client import PatientClient, Timeline, folder_images, percentiles  # noqa: E402

from ml_core.testing import make_xray_like_png  # noqa: E402  (pure numpy/PIL, no Django)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_ONLY = frozenset({".png"})  # a reused image is made distinct, which only PNGs can be here (distinct_png)


def distinct_png(data: bytes, nonce: str) -> bytes:
    """The same PNG (same pixels) with a tEXt chunk holding ``nonce`` before IEND: other bytes, so a
    patient who uploads an image again makes a new study instead of getting the first one back
    (uploads are de-duplicated per patient by their sha256)."""
    if not data.startswith(PNG_SIGNATURE) or data[-8:-4] != b"IEND":
        raise ValueError("not a PNG ending in IEND")
    body = b"Comment\x00" + nonce.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:-12] + chunk + data[-12:]


def upload_bytes(args, index: int, n: int) -> bytes:
    """The n-th upload of patient ``index``: a generated image, or the folder's images dealt round
    the patients (disjoint while they last), made distinct when the folder comes round again."""
    if not args.images:
        return make_xray_like_png(size=args.image_size, seed=index * 100_000 + n)  # distinct bytes: never a duplicate
    position = index + n * args.patients
    data = args.images[position % len(args.images)].read_bytes()
    laps = position // len(args.images)
    return distinct_png(data, f"load-test patient {index} lap {laps}") if laps else data


def listed_study_ids(client: PatientClient) -> list[str]:
    ids, page = [], 1
    while True:
        body = client._ok(client.http.get("/studies", params={"page": page}))
        ids += [s["id"] for s in body["results"]]
        if not body.get("next"):
            return ids
        page += 1


def patient_loop(index: int, args, stop_at: float, lock: threading.Lock, out: list) -> dict:
    client = PatientClient(args.base_url)
    client.sign_up()
    mine: list[Timeline] = []
    n = 0
    while time.monotonic() < stop_at:
        image = upload_bytes(args, index, n)
        n += 1
        body, started = client.upload(image)
        line = client.follow(body["id"], started, wait_explanation=args.wait_explanation, timeout=args.timeout)
        line.duplicate = body["duplicate"]
        mine.append(line)
    listed = listed_study_ids(client)
    client.close()
    with lock:
        out.extend(mine)
    uploaded = [t.study_id for t in mine]
    return {
        "uploaded": len(uploaded),
        "lost": sorted(set(uploaded) - set(listed)),
        "unexpected": sorted(set(listed) - set(uploaded)),
        "duplicated": [sid for sid, c in Counter(listed).items() if c > 1] + [t.study_id for t in mine if t.duplicate],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument(
        "--wait-explanation",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a result = the prediction (default) or the explanation too",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--folder", default="", help="upload real PNG X-rays from this <LABEL>/<image> tree")
    parser.add_argument(
        "--serve", choices=("embedded", "services"), help="start DeepMed in this mode on loopback (not --base-url)"
    )
    bench_latency.add_server_arguments(parser)
    args = parser.parse_args(argv)
    args.images = folder_images(Path(args.folder), PNG_ONLY) if args.folder else []
    if args.folder and not args.images:
        raise SystemExit(f"no <LABEL>/<image>.png files under {args.folder}")
    if not args.serve:
        return run(args)
    with tempfile.TemporaryDirectory(prefix="deepmed-load-") as tmp:
        (Path(tmp) / "data").mkdir()
        server = bench_latency.Server(
            args.serve,
            bench_latency.free_port(),
            Path(tmp) / "data",
            Path(tmp),
            web_processes=args.web_processes,
            inference_workers=args.inference_workers,
        )
        with server:
            args.base_url = server.base_url
            warm_images = args.images or folder_images(bench_latency.DEFAULT_FOLDER)
            if args.serve == "services" and not bench_latency.warm_up_workers(server.base_url, warm_images):
                print("warning: no warm-up study was explained; the workers may start cold", file=sys.stderr)
            return run(args)


def run(args) -> int:
    lock, timelines = threading.Lock(), []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.patients) as pool:
        futures = [
            pool.submit(patient_loop, i, args, started + args.seconds, lock, timelines) for i in range(args.patients)
        ]
        checks = [f.result() for f in futures]
    elapsed = time.monotonic() - started
    done = [t for t in timelines if t.final_s is not None]
    report = {
        "server": args.serve or args.base_url,
        # the server's shape when this tool started it (--serve); unknown for --base-url
        "web_processes": args.web_processes if args.serve else None,
        "inference_workers": args.inference_workers if args.serve else None,
        "patients": args.patients,
        "seconds": round(elapsed, 1),
        "studies": len(timelines),
        "throughput_per_min": round(len(done) / elapsed * 60, 1),
        "upload_ms": percentiles([t.uploaded_s for t in timelines]),
        "upload_to_result_ms": percentiles([t.final_s for t in done]),
        "statuses": dict(Counter(t.status for t in timelines)),
        "not_final": [t.study_id for t in timelines if t.final_s is None],
        "lost": [sid for c in checks for sid in c["lost"]],
        "duplicated": [sid for c in checks for sid in c["duplicated"]],
        "unexpected": [sid for c in checks for sid in c["unexpected"]],
    }
    print(json.dumps(report, indent=2))
    return 0 if not (report["not_final"] or report["lost"] or report["duplicated"] or report["unexpected"]) else 1


if __name__ == "__main__":
    sys.exit(main())
