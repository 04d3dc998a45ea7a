"""Review-app decision latency against the size of the decision log.

Builds a review database (C classes x K candidates over tiny images), appends E events through the
store, then times ``POST /api/decisions`` requests through the real app (FastAPI TestClient: the full
middleware, validation, store and JSON path, no network). Reports p50 / p95 / max per log size.

With ``--baseline REV`` the same measurement runs, side by side in this one command, on the code of git
revision REV (its ``src/`` exported to a temporary folder and run in a subprocess), e.g. the commit before
the ``current`` table: ``python benchmarks/review_latency.py --baseline c24a637``.

    PYTHONPATH=src python benchmarks/review_latency.py [--events 0 100000] [--requests 200] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def build_store(folder: Path, classes: int, per_class: int) -> Any:
    import numpy as np
    from PIL import Image

    from woodseg.ood.candidates import Candidate
    from woodseg.ood.rank import write_ranked
    from woodseg.ood.review.store import ReviewSettings, ReviewStore

    root = folder / "images"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_images = classes * per_class // 2  # an image is a candidate of two classes on average
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / f"img{i:05d}.jpg")
    names = [f"class{c:02d}" for c in range(classes)]
    cands = {}
    for c, name in enumerate(names):
        members = sorted(random.Random(c).sample(range(n_images), per_class))
        cands[name] = [Candidate(f"img{i:05d}.jpg", name, 0.99 - 0.4 * r / per_class, r + 1, 0.5, 0.5)
                       for r, i in enumerate(members)]
    ranked = write_ranked(folder / "ranked", cands, {"class_names": names, "root": str(root), "threshold": 0.5})
    return ReviewStore.create(folder / "review.sqlite", ranked, ReviewSettings(target_n=10**6))


def fill(store: Any, events: int, rng: random.Random) -> None:
    """Append ``events`` decisions (keep / reject / skip at random) in transactions of 500."""
    ids = [s.id for s in store.states()]
    done = 0
    while done < events:
        k = min(500, events - done)
        store.decide_many([(rng.choice(ids), rng.choice(("keep", "reject", "skip")), None) for _ in range(k)], "filler")
        done += k


def measure(events_list: list[int], requests: int, classes: int, per_class: int) -> list[dict[str, Any]]:
    """p50 / p95 / max milliseconds of one decision request at each log size (events added cumulatively)."""
    from fastapi.testclient import TestClient

    from woodseg.ood.review.app import create_app

    rng = random.Random(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp), classes, per_class)
        client = TestClient(create_app(store, reviewer="bench"), base_url="http://127.0.0.1:8765")
        client.__enter__()  # one event-loop thread for all requests, as a running server has
        ids = [s.id for s in store.states()]
        have = 0
        for target in sorted(events_list):
            fill(store, target - have, rng)
            have = target
            times, cpu = [], []
            for _ in range(requests):
                body = {"candidate": rng.choice(ids), "decision": rng.choice(("keep", "reject", "skip")),
                        "reviewer": "bench"}
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.post("/api/decisions", json=body)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                assert r.status_code == 200, r.text
            have += requests
            times.sort()
            out.append({"events": target, "requests": requests, "p50_ms": statistics.median(times),
                        "cpu_p50_ms": statistics.median(cpu),
                        "p95_ms": times[int(0.95 * (len(times) - 1))], "max_ms": times[-1]})
        client.__exit__(None, None, None)
    return out


def run_worker(src: Path, args: argparse.Namespace, requests: int) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--requests", str(requests),
           "--classes", str(args.classes), "--per-class", str(args.per_class), "--events", *map(str, args.events)]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def export_src(rev: str, dest: Path) -> Path:
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def table(rows: list[dict[str, Any]], label: str) -> list[str]:
    return [f"| {label} | {r['events']:,} | {r['requests']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['max_ms']:.2f} "
            f"| {r['cpu_p50_ms']:.2f} |" for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, nargs="+", default=[0, 100_000])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--baseline", help="git revision to measure side by side (its src/ runs in a subprocess)")
    ap.add_argument("--baseline-requests", type=int, default=40, help="requests per size for the baseline")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "review_latency.md")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measure(args.events, args.requests, args.classes, args.per_class)))
        return
    load0 = os.getloadavg()[0]
    current = run_worker(REPO / "src", args, args.requests)
    lines = ["# Review app: decision latency against the decision-log size", "",
             f"Command: `PYTHONPATH=src python benchmarks/review_latency.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"{args.classes} classes x {args.per_class} candidates; each row times `POST /api/decisions` "
             "(random candidate and decision) through the whole app (FastAPI TestClient, no network) after "
             "that many events are in the log. Wall-clock milliseconds, and the CPU milliseconds the process "
             "spent per request (less sensitive to other load on the machine).", "",
             "| code | events in the log | requests | p50 ms | p95 ms | max ms | CPU p50 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += table(current, "this tree")
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            old = run_worker(export_src(args.baseline, Path(tmp)), args, args.baseline_requests)
        lines += table(old, f"`{args.baseline}` (before)")
    p50 = max(r["p50_ms"] for r in current if r["events"] == max(args.events))
    lines += ["", f"p50 at {max(args.events):,} events: {p50:.2f} ms (goal: under 10 ms). Machine: {os.cpu_count()} "
              f"CPUs, 1-minute load average {load0:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
              "(other jobs were running: wall times above the CPU times are waiting for a core).", "",
              "At 0 events no candidate is decided, at 100,000 every one is: what rises a little with the log "
              "is the per-class state read for the answer (bounded by the class's candidates), not the log. "
              "`tests/ood/test_ood_app_hardening.py` checks that a decision's SQLite steps stay flat as the log "
              "grows 20-fold over the same decided candidates.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
