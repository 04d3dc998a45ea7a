"""Throughput of woodseg's hot paths on this machine: training steps, CAM seeds, seed evaluation, ranking.

    python benchmarks/throughput.py                  # demo scale: the demo config's model, crop and batch on benchmark-sized images
    python benchmarks/throughput.py --voc            # VOC scale: ResNet-50 at IRN's sizes (slow on a CPU)

Prints a Markdown table (and writes it to benchmarks/results/throughput[-voc].md) with images per second
for: a baseline training step, a W-OoD training step (paper and official), multi-scale CAM inference
(4 scales + flip), the one-pass threshold sweep, and pool scoring. Timings exclude the first (warm-up)
repetitions; every figure states batch size, image size and thread count.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from woodseg.config import ModelConfig, WoodConfig, load_config
from woodseg.data.benchmark.spec import BENCHMARK_VERSION, CLASSES, BenchmarkSpec
from woodseg.evaluate.seeds import sweep_confusions
from woodseg.fsutil import atomic_write_text
from woodseg.models.cam_net import build_cam_net
from woodseg.seeds.advcam import AdvParams, advcam_multiscale
from woodseg.seeds.cam import multiscale_cams
from woodseg.wood.objective import wood_objective

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class DemoScale:
    """What `woodseg demo` trains and infers: its config's classifier, crop, batch and K, on images of the
    benchmark's size (random weights: speed does not depend on them)."""

    model: ModelConfig
    crop: int
    batch: int
    image_hw: tuple[int, int]
    n_classes: int
    K: int
    label: str


def demo_scale() -> DemoScale:
    """The demo's sizes, read from the bundled ``demo`` config and the current benchmark spec."""
    demo = load_config("demo")
    spec = BenchmarkSpec()
    return DemoScale(model=demo.model.model_copy(update={"weights": None}), crop=demo.train.crop_size,
                     batch=demo.train.batch_size, image_hw=(spec.height, spec.width), n_classes=len(CLASSES),
                     K=demo.wood.K, label=f"{demo.model.backbone}, demo sizes (benchmark v{BENCHMARK_VERSION})")


def timed(fn: Callable[[], object], warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voc", action="store_true", help="ResNet-50 at VOC sizes instead of the demo's ResNet-10")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.voc:
        mcfg = ModelConfig(backbone="resnet50", weights=None, freeze_bn=True, frozen_stages=2)
        crop, batch, img_hw, n_cls, k, label = 512, 4, (375, 500), 20, 50, "ResNet-50, VOC sizes"
    else:
        demo = demo_scale()
        mcfg, crop, batch, img_hw, n_cls, k, label = (demo.model, demo.crop, demo.batch, demo.image_hw,
                                                      demo.n_classes, demo.K, demo.label)
    model = build_cam_net(mcfg, n_cls)
    feat = model.feature_dim
    x_in = torch.randn(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    y_in = (torch.rand(batch, n_cls) > 0.7).float()
    centres = (torch.randn(n_cls, feat), torch.ones(n_cls, dtype=torch.bool), torch.randn(k, feat))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    rows = []

    def step(variant: str) -> Callable[[], None]:
        cfg = WoodConfig(variant=variant)

        def run() -> None:
            model.train()
            terms = wood_objective(model, cfg, x_in, y_in, None if variant == "none" else x_in, centres)
            loss = sum(terms.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return run

    for variant, name in (("none", "train step, baseline"), ("paper", "train step, W-OoD paper (+ OoD batch)"),
                          ("official", "train step, W-OoD official (+ anti-adversarial OoD)")):
        s = timed(step(variant), 1, args.reps)
        rows.append((name, f"batch {batch} in-dist{'' if variant == 'none' else f' + {batch} OoD'}, {crop} px crop",
                     batch / s))
    model.eval()
    img = np.random.default_rng(0).integers(0, 255, (*img_hw, 3), dtype=np.uint8)
    cam_batch = 1 if args.voc else 8
    s = timed(lambda: multiscale_cams(model, [img] * cam_batch, [1.0, 0.5, 1.5, 2.0], True), 1, max(2, args.reps // 2))
    rows.append(("CAM seeds, scales 1, 0.5, 1.5, 2 + flip", f"{img_hw[0]}x{img_hw[1]} images, batch {cam_batch}",
                 cam_batch / s))
    adv = AdvParams()  # the official T = 27 (13 at scale 0.5), one class: AdvCAM's cost is per class present
    s = timed(lambda: advcam_multiscale(model, img, [0], [1.0, 0.5, 1.5, 2.0], adv, True), 0, 1)
    rows.append((f"AdvCAM seeds, {adv.iters} iterations x scales 1, 0.5, 1.5, 2 + flip, one class",
                 f"{img_hw[0]}x{img_hw[1]} image", 1 / s))
    with torch.no_grad():
        s = timed(lambda: model(torch.randn(batch, 3, *img_hw).contiguous(memory_format=torch.channels_last)), 1,
                  args.reps)
    rows.append(("pool scoring / centre features (one forward)", f"{img_hw[0]}x{img_hw[1]}, batch {batch}", batch / s))
    rng = np.random.default_rng(0)
    high = rng.random((2, *img_hw)).astype(np.float32)
    gt = rng.integers(0, n_cls + 1, img_hw)
    thr = np.round(np.arange(0.05, 0.81, 0.01), 2)
    s = timed(lambda: sweep_confusions(gt, high, np.array([0, 1]), thr, n_cls + 1), 2, 20)
    rows.append(("seed evaluation, 76-threshold sweep", f"{img_hw[0]}x{img_hw[1]}, 2 classes", 1 / s))

    lines = [f"# Throughput ({label})", "",
             f"Machine: {platform.machine()} {platform.processor() or ''}, {args.threads} torch threads, "
             f"torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}; channels_last; "
             f"{args.reps} timed repetitions after warm-up.", "",
             "| path | setting | images/s |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c:,.0f} |" if c >= 100 else f"| {a} | {b} | {c:.3g} |" for a, b, c in rows]
    lines += ["", f"Command: `python benchmarks/throughput.py{' --voc' if args.voc else ''}"
                  f"{'' if args.reps == 5 else f' --reps {args.reps}'}"
                  f"{'' if args.threads == torch.get_num_threads() else f' --threads {args.threads}'}`", ""]
    md = "\n".join(lines)
    atomic_write_text(HERE / "results" / f"throughput{'-voc' if args.voc else ''}.md", md)
    print(md)


if __name__ == "__main__":
    main()
