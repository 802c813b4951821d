"""Replay chest X-rays from a folder as patient uploads through /api/v1 at a set rate.

    .venv/bin/python deploy/tools/simulate_traffic.py --base-url http://127.0.0.1:8000 \\
        --folder ../shared/data/cxr/test --rate 1 --count 60 --patients 5

The folder holds <LABEL>/<image> (PNG/JPEG/DICOM): the sub-folder name is the true label.
Reports latency percentiles upload → prediction and upload → explanation, accuracy of the
predictions against the folder labels, and how many studies failed (with their codes).
Works the same against embedded mode (`manage.py serve`) and the real-service stack.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from patient_client import PatientClient, Timeline, folder_images, percentiles


def labelled_images(folder: Path) -> list[tuple[str, Path]]:
    return [(path.parent.name, path) for path in folder_images(folder)]


def normalise(label: str) -> str:
    return label.upper().replace("-", "").replace("_", "")


def summarise(results: list[tuple[str, Timeline]], elapsed_s: float) -> dict:
    predicted = [(truth, t) for truth, t in results if t.label is not None]
    correct = sum(normalise(truth) == normalise(t.label) for truth, t in predicted)
    return {
        "uploads": len(results),
        "elapsed_s": round(elapsed_s, 1),
        "statuses": dict(Counter(t.status for _, t in results)),
        "duplicates": sum(t.duplicate for _, t in results),
        "upload_ms": percentiles([t.uploaded_s for _, t in results]),
        "to_prediction_ms": percentiles([t.predicted_s for _, t in results if t.predicted_s is not None]),
        "to_explanation_ms": percentiles([t.explained_s for _, t in results if t.explained_s is not None]),
        "accuracy": round(correct / len(predicted), 3) if predicted else None,
        "predicted": len(predicted),
        "not_final": sum(t.final_s is None for _, t in results),
    }


def run(args) -> dict:
    images = labelled_images(Path(args.folder))
    if not images:
        raise SystemExit(f"no <LABEL>/<image> files under {args.folder}")
    rng = random.Random(args.seed)
    rng.shuffle(images)
    clients = [PatientClient(args.base_url) for _ in range(args.patients)]
    for client in clients:
        client.sign_up()
    lock = threading.Lock()
    results: list[tuple[str, Timeline]] = []

    def one(i: int) -> None:
        truth, path = images[i % len(images)]
        client = clients[i % len(clients)]
        body, started = client.upload(path.read_bytes(), path.name)
        line = client.follow(body["id"], started, wait_explanation=args.wait_explanation, timeout=args.timeout)
        line.duplicate = body["duplicate"]
        with lock:
            results.append((truth, line))

    count = args.count or len(images)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.max_in_flight) as pool:
        futures = []
        for i in range(count):
            # A steady arrival rate, independent of how fast the server answers.
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            futures.append(pool.submit(one, i))
        errors = [f.exception() for f in futures if f.exception() is not None]
    report = summarise(results, time.monotonic() - started)
    report["client_errors"] = [str(e)[:200] for e in errors]
    for client in clients:
        client.close()
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--folder", required=True, help="<LABEL>/<image> tree, e.g. ../shared/data/cxr/test")
    parser.add_argument("--rate", type=float, default=1.0, help="uploads per second")
    parser.add_argument("--count", type=int, default=0, help="uploads in all (default: every image once)")
    parser.add_argument("--patients", type=int, default=5, help="patient accounts the uploads are spread over")
    parser.add_argument("--max-in-flight", type=int, default=32, help="uploads being followed at once")
    parser.add_argument("--wait-explanation", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to follow one study")
    parser.add_argument("--seed", type=int, default=0)
    report = run(parser.parse_args(argv))
    print(json.dumps(report, indent=2))
    return 0 if not report["client_errors"] and not report["not_final"] else 1


if __name__ == "__main__":
    sys.exit(main())
