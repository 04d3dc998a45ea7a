"""How much each W-OoD loss term pulls on the network: per-term gradient norms at the start of W-OoD training.

    python benchmarks/loss_balance.py benchmarks/runs/seed0/paper benchmarks/runs/seed0/official

For each finished W-OoD run directory (``<run>/classifier/{config.yaml, centres.npz}``), this loads the
run's starting classifier F_in (``train.init_from``) and its centres, draws a few training batches of
in-distribution and OoD images with the run's own augmentation, and prints, per weighted loss term, its
value and the norm of its gradient with respect to the trainable backbone parameters (what moves the
features) and with respect to the features z themselves. The ratio of L_d's gradient to L_cls's says
whether lambda * L_d can change the features at all at this scale; Table 5 row (c) is the outcome.
Results go to ``benchmarks/results/loss_balance.md``.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch

from woodseg.config import load_config
from woodseg.data.build import load_dataset, load_ood
from woodseg.fsutil import atomic_write_text
from woodseg.models.cam_net import load_classifier
from woodseg.train.data import step_loader
from woodseg.wood.centres import Centres
from woodseg.wood.objective import wood_objective

HERE = Path(__file__).resolve().parent


def grad_norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((t.detach() ** 2).sum() for t in tensors if t is not None)))


def term_gradients(run: Path, batches: int) -> dict[str, dict[str, float]]:
    """Mean over ``batches`` steps of each term's value, backbone-gradient norm and per-image z-gradient norm."""
    cfg = load_config(str(run / "classifier" / "config.yaml"), [])
    if cfg.train.init_from is None:
        raise SystemExit(f"{run} is not a fine-tuning run (train.init_from is empty)")
    model, names = load_classifier(cfg.train.init_from)
    model.train()
    centres = Centres.load(run / "classifier" / "centres.npz").tensors("cpu")
    ds = load_dataset(cfg.data)
    ids = ds.check_split(cfg.data.train_split)
    labels = np.stack([ds.label(i) for i in ids]).astype(np.float32)
    ood = load_ood(cfg.data)
    in_loader = step_loader([ds.image_path(i) for i in ids], labels, cfg.train.batch_size, cfg.train, stream="in",
                            start=0, stop=batches)
    ood_loader = step_loader(ood.paths, None, cfg.wood.ood_batch_size, cfg.train, stream="ood", start=0, stop=batches)
    exclude = names.index(cfg.wood.exclude_class) if cfg.wood.exclude_class in names else None
    backbone = model.param_groups()[0]
    sums: dict[str, dict[str, list[float]]] = {}
    feats: list[torch.Tensor] = []

    def recording(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # the model, keeping each forward's z
        logits, z = model(x)
        feats.append(z)
        return logits, z

    for b_in, b_ood in zip(in_loader, ood_loader, strict=False):
        feats.clear()
        terms = wood_objective(recording, cfg.wood, b_in["x"], b_in["y"], b_ood["x"], centres, exclude)
        z_in = feats[0]  # the in-distribution forward comes first in every variant
        for name, value in terms.items():
            grads = torch.autograd.grad(value, backbone + [z_in], retain_graph=True, allow_unused=True)
            row = sums.setdefault(name, {"value": [], "backbone": [], "z": []})
            row["value"].append(value.item())
            row["backbone"].append(grad_norm(list(grads[:-1])))
            zg = grads[-1]
            row["z"].append(float(zg.flatten(1).norm(dim=1).mean()) if zg is not None else 0.0)
    return {name: {k: float(np.mean(v)) for k, v in row.items()} for name, row in sums.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="finished W-OoD run directories")
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "loss_balance.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lines = ["# Loss balance at the start of W-OoD training", "",
             f"Per weighted term: value, the norm of its gradient w.r.t. the trainable backbone parameters, and "
             f"the mean per-image norm of its gradient w.r.t. the feature z of the in-distribution images; mean over "
             f"{args.batches} training batches drawn with each run's augmentation, from the run's F_in and centres.",
             ""]
    for run in args.runs:
        cfg = load_config(str(run / "classifier" / "config.yaml"), [])
        w = cfg.wood
        res = term_gradients(run, args.batches)
        ref = res.get("cls_in", {}).get("backbone", float("nan"))
        lines += [f"## {run}", "",
                  f"variant {w.variant}, lambda {w.lam}, tau {w.tau}, K {w.K}, normalize_by_k {w.normalize_by_k}, "
                  f"batch {cfg.train.batch_size} + OoD {w.ood_batch_size}, crop {cfg.train.crop_size}", "",
                  "| term | value | backbone grad norm | / cls_in's | z grad norm per image |", "|---|---|---|---|---|"]
        for name, r in res.items():
            lines.append(f"| {name} | {r['value']:.4g} | {r['backbone']:.3g} | {r['backbone'] / ref:.3f} | {r['z']:.3g} |")
        lines.append("")
    lines += [f"Command: `python benchmarks/loss_balance.py {' '.join(map(str, args.runs))} --batches {args.batches}`",
              "",
              f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}.", ""]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
