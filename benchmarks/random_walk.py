"""Random walk: woodseg's sparse propagation against IRN's dense matrix squaring, time and peak memory.

    python benchmarks/random_walk.py                       # 256x256, 500x375 and 1024x1024 images
    python benchmarks/random_walk.py --sizes 256x256 --dense-max-nodes 5000

Both walk the same stride-4 maps (3 seed planes, a random boundary map) with IRN's settings (radius 5,
beta 10, exp_times 8), each in a fresh subprocess with one thread, so that the peak resident memory
(``ru_maxrss``) is its own. "walk peak" is the peak minus the resident memory just before the walk (Python,
NumPy, PyTorch and the inputs). The dense reference is skipped where its N x N matrices (two are alive while
squaring, plus the padded one while building) would not fit in this machine's memory, or above
``--dense-max-nodes``; the table says which. Writes benchmarks/results/random_walk.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_inputs(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Stride-4 seeds [3, ceil(h/4), ceil(w/4)] and a boundary map with sparse strong edges."""
    rng = np.random.default_rng(0)
    h4, w4 = math.ceil(h / 4), math.ceil(w / 4)
    edge = (rng.uniform(0, 1, (h4, w4)) ** 6).astype(np.float32)
    seeds = rng.uniform(0, 1, (3, h4, w4)).astype(np.float32)
    return seeds, edge


def child(method: str, h: int, w: int, out: str) -> None:
    """Run one walk in this (fresh) process and write its time, peak memory and labels."""
    import torch

    torch.set_num_threads(1)
    from woodseg.refine.random_walk import WalkParams, propagate, propagate_dense, walk_labels

    seeds, edge = make_inputs(h, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    walked = (propagate_dense if method == "dense" else propagate)(seeds, edge, WalkParams())
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    labels = walk_labels(walked, np.array([0, 1, 2]), (h, w), 0.25)
    np.save(out, labels)
    print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "walk_peak_mib": (peak - before) / 1024}))


def run_child(method: str, h: int, w: int, out: Path) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--child", method, f"{h}x{w}", str(out)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dense_bytes(h: int, w: int) -> int:
    """Peak bytes of the dense reference: the padded N'xN' matrix and its crop, then two NxN while squaring."""
    h4, w4, r = math.ceil(h / 4), math.ceil(w / 4), 5
    n, npad = h4 * w4, (h4 + r) * (w4 + 2 * r)
    return 4 * max(npad * npad + n * n, 3 * n * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["256x256", "500x375", "1024x1024"], help="image sizes WxH")
    ap.add_argument("--dense-max-nodes", type=int, default=12_000,
                    help="skip the dense reference above this many stride-4 pixels (its time grows as N^3)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, size, out = args.child
        h, w = (int(v) for v in size.split("x"))
        child(method, h, w, out)
        return
    mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    tmp = HERE / "results" / ".random_walk_tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        n = math.ceil(h / 4) * math.ceil(w / 4)
        sparse = run_child("sparse", h, w, tmp / "sparse.npy")
        print(size, "sparse", sparse, flush=True)
        need = dense_bytes(h, w)
        if need > 0.8 * mem_total:
            dense, why = None, f"skipped: needs ~{need / 2**30:.0f} GiB, machine has {mem_total / 2**30:.0f} GiB"
        elif n > args.dense_max_nodes:
            dense, why = None, f"skipped: N = {n} > --dense-max-nodes (~{need / 2**30:.1f} GiB, time ~N^3)"
        else:
            dense, why = run_child("dense", h, w, tmp / "dense.npy"), ""
            print(size, "dense", dense, flush=True)
            agree = float((np.load(tmp / "sparse.npy") == np.load(tmp / "dense.npy")).mean())
        if dense is None:
            rows.append(f"| {size} | {n} | {sparse['seconds']:.2f} | {sparse['walk_peak_mib']:.0f} "
                        f"| {why} | | | | |")
        else:
            rows.append(
                f"| {size} | {n} | {sparse['seconds']:.2f} | {sparse['walk_peak_mib']:.0f} | {dense['seconds']:.2f} "
                f"| {dense['walk_peak_mib']:.0f} | {dense['seconds'] / sparse['seconds']:.1f}x "
                f"| {dense['walk_peak_mib'] / max(sparse['walk_peak_mib'], 1e-9):.0f}x | {100 * agree:.3f} |")
    for f in tmp.glob("*.npy"):
        f.unlink()
    tmp.rmdir()
    cmd = "python benchmarks/random_walk.py" + ("" if args.sizes == ap.get_default("sizes") else
                                                 " --sizes " + " ".join(args.sizes))
    md = "\n".join([
        "# Random walk: sparse propagation vs IRN's dense squaring",
        "",
        f"`{cmd}` on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(one thread per run), {mem_total / 2**30:.0f} GiB RAM, {time.strftime('%Y-%m-%d')}.",
        "Radius 5, beta 10, exp_times 8 (256 steps), 3 seed planes; each run in a fresh process; walk peak = "
        "peak RSS during the walk minus RSS before it. Agreement = share of pixels with the same final label.",
        "The dense squarings cost 16 N^3 FLOP (~26 TFLOP at 500x375); timings on a shared machine are noisy.",
        "",
        "| image (WxH) | stride-4 pixels N | sparse s | sparse walk peak MiB | dense s | dense walk peak MiB "
        "| speed-up | memory ratio | label agreement % |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    from woodseg.fsutil import atomic_write_text

    atomic_write_text(HERE / "results" / "random_walk.md", md)
    print(md)


if __name__ == "__main__":
    main()
