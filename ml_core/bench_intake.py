"""Intake decoding benchmark: is decoding bounded for every hostile input class?

    python -m ml_core.bench_intake              # every case of ml_core.testing.intake_cases(full_scale=True)
    python -m ml_core.bench_intake --case NAME  # only the named case(s)

Each input is generated here, written to a temporary file and decoded in a fresh
subprocess pinned to one CPU core, so that one case's memory never hides another's. The
child reports the outcome (accepted, or refused with its code), the wall time of the decode,
its RSS growth (peak RSS, reset just before the decode, minus RSS before it) and, from a
second decode, the tracemalloc peak (Python and numpy allocations; Pillow's own buffers show
only in RSS). The last line checks the target: the worst ACCEPTED input stays within
300 MB and 1 s.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TARGET_PEAK_MB = 300
TARGET_SECONDS = 1.0
CHILD_ADDRESS_SPACE = 4 * 1024**3  # a runaway decode fails in its child instead of exhausting the machine
SINGLE_THREAD_ENV = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_core.bench_intake", description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    parser.add_argument("--measure", metavar="FILE", help=argparse.SUPPRESS)  # internal: the child's job
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure_file(Path(args.measure))))
        return 0
    return run_all(args.case)


def run_all(only: list[str]) -> int:
    from ml_core.testing import intake_cases

    cases = [case for case in intake_cases(full_scale=True) if not only or case.name in only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        for case in cases:
            path = Path(tmp) / case.name
            path.write_bytes(case.make())
            result = _measure_in_child(path)
            path.unlink()
            expected = case.expected or "accepted"
            result.update(
                name=case.name,
                expected=expected,
                size_kb=result.pop("input_bytes") / 1024,
                as_expected=result["outcome"] == expected,
            )
            rows.append(result)
            _print_row(rows[-1], header=len(rows) == 1)
    if not all(row.get("peak_was_reset", True) for row in rows):
        print("note: /proc/self/clear_refs was not writable: RSS+ is the whole child's peak (warm-up included)")
    return _print_verdict(rows)


def _measure_in_child(path: Path) -> dict:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "ml_core.bench_intake", "--measure", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "outcome": f"CRASH ({last[:60]})",
            "seconds": float("nan"),
            "rss_mb": float("nan"),
            "traced_mb": float("nan"),
            "input_bytes": path.stat().st_size,
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_file(path: Path) -> dict:
    """In the child: decode ``path`` once for time and RSS, once more for the tracemalloc peak."""
    from ml_core.imaging import decode_image
    from ml_core.testing import make_dicom_bytes, make_xray_like_png

    _confine_to_one_core()
    data = path.read_bytes()
    for warm_up in (make_xray_like_png(64), make_dicom_bytes(rows=64, columns=64)):
        decode_image(warm_up)  # imports and first-use allocations are not the input's cost
    gc.collect()

    rss_before = _status_mb("VmRSS")
    peak_was_reset = _reset_peak_rss()
    start = time.perf_counter()
    outcome = _decode(data)
    seconds = time.perf_counter() - start
    rss_peak = _status_mb("VmHWM") if peak_was_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.collect()

    tracemalloc.start()
    _decode(data)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "outcome": outcome,
        "seconds": seconds,
        "rss_mb": max(0.0, rss_peak - rss_before),
        "traced_mb": traced / 1024**2,
        "input_bytes": len(data),
        "peak_was_reset": peak_was_reset,
    }


def _decode(data: bytes) -> str:
    from ml_core.imaging import ImageIntakeError, decode_image

    try:
        decoded = decode_image(data)
    except ImageIntakeError as exc:
        return exc.code
    del decoded
    return "accepted"


def _confine_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is the decode's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(row: dict) -> float:
    return max(row["rss_mb"], row["traced_mb"])


def _print_row(row: dict, *, header: bool) -> None:
    if header:
        print(f"{'case':28s} {'input':>9s} {'expected':>22s} {'outcome':>22s} {'traced':>8s} {'RSS+':>8s} {'time':>7s}")
    mark = "" if row["as_expected"] else "  << UNEXPECTED"
    print(
        f"{row['name']:28s} {row['size_kb']:7.0f}KB {row['expected']:>22s} {row['outcome']:>22s} "
        f"{row['traced_mb']:6.1f}MB {row['rss_mb']:6.1f}MB {row['seconds']:6.3f}s{mark}",
        flush=True,
    )


def _print_verdict(rows: list[dict]) -> int:
    accepted = [row for row in rows if row["outcome"] == "accepted"]
    all_expected = all(row["as_expected"] for row in rows)
    print(
        f"outcomes as expected: {'yes' if all_expected else 'NO'} ({sum(r['as_expected'] for r in rows)}/{len(rows)})"
    )
    if not accepted:
        print("target: no accepted input to check")
        return 0 if all_expected else 1
    worst_peak = max(accepted, key=_peak_mb)
    worst_time = max(accepted, key=lambda row: row["seconds"])
    ok = _peak_mb(worst_peak) <= TARGET_PEAK_MB and worst_time["seconds"] <= TARGET_SECONDS
    print(
        f"target (worst accepted input <= {TARGET_PEAK_MB} MB peak and <= {TARGET_SECONDS:g} s on one core): "
        f"{'PASS' if ok else 'FAIL'} - worst peak {_peak_mb(worst_peak):.0f} MB ({worst_peak['name']}), "
        f"worst time {worst_time['seconds']:.2f} s ({worst_time['name']}); load average {os.getloadavg()[0]:.1f}"
    )
    return 0 if ok and all_expected else 1


if __name__ == "__main__":
    sys.exit(main())
