"""Two-process DDP training on the CPU (Gloo) through torchrun, as a user's multi-GPU run is launched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides, torchrun_path
from woodseg.data.images import load_mask
from woodseg.fsutil import read_jsonl
from woodseg.models.checkpoint import load_checkpoint


@pytest.mark.slow
def test_torchrun_two_processes(tiny_voc, tmp_path):
    torchrun = torchrun_path()
    base = tmp_path / "base"
    frozen_bn = {"model.freeze_bn": True, "runtime.threads": 1}  # batch statistics would couple a rank's images
    over = tiny_overrides(tiny_voc, base, **{"wood.variant": "none", **frozen_bn})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "train", "-q", *over]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    state = load_checkpoint(base / "classifier/last.pt")
    assert state["finished"] and state["step"] == 3  # 24 images / global batch 8, one epoch
    records = read_jsonl(base / "classifier/metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]  # only rank 0 logs
    assert proc.stdout.count("classifier:") == 1  # and only rank 0 prints the result line
    # W-OoD with centres computed on rank 0 and shared through the file
    wood = tmp_path / "wood"
    wood_over = {"wood.variant": "official", "train.init_from": base / "classifier/last.pt", **frozen_bn}
    over = tiny_overrides(tiny_voc, wood, **wood_over)
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "train", "-q",
                           *over], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (wood / "classifier/centres.npz").exists()
    # one process on the same global batch trains the same weights, baseline and W-OoD alike
    for name, extra in (("base", {"wood.variant": "none", **frozen_bn}), ("wood", wood_over)):
        one = tmp_path / f"one-{name}"
        proc = subprocess.run([sys.executable, "-m", "woodseg", "train", "-q",
                               *tiny_overrides(tiny_voc, one, **extra)], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        single, double = load_checkpoint(one / "classifier/last.pt"), load_checkpoint(tmp_path / name / "classifier/last.pt")
        for key, value in single["model"].items():
            torch.testing.assert_close(double["model"][key], value, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")


# --- the official variant's batch-wide quantities under DDP: 2 Gloo processes equal 1 -------------------------

WORLD = 2


def _official_setup():
    from woodseg.config import ModelConfig, WoodConfig
    from woodseg.models.cam_net import build_cam_net

    torch.manual_seed(0)
    mcfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=True, frozen_stages=0, channels_last=False)
    model = build_cam_net(mcfg, 3).eval()  # eval: no batch statistics couple the images
    g = torch.Generator().manual_seed(3)
    x_in, x_ood = torch.randn(8, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g) * 2
    y_in = (torch.rand(8, 3, generator=g) > 0.5).float()
    y_in[y_in.sum(1) == 0, 0] = 1.0
    centres = (torch.randn(3, 512, generator=g), torch.tensor([True, True, False]), torch.randn(5, 512, generator=g))
    cfg = WoodConfig(variant="official", lam=5.0, tau=0.3, K=5, ood_coeff=0.25, adv_step=0.07)
    return model, cfg, x_in, y_in, x_ood, centres


def _z_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of a global batch of 8 and centres (3 classes, 7 OoD) for the distance loss alone."""
    g = torch.Generator().manual_seed(5)
    return torch.randn(8, 6, generator=g), torch.randn(3, 6, generator=g), torch.randn(7, 6, generator=g)


def _single_process() -> dict[str, torch.Tensor]:
    from woodseg.wood import losses
    from woodseg.wood.objective import wood_objective

    model, cfg, x_in, y_in, x_ood, centres = _official_setup()
    terms = wood_objective(model, cfg, x_in, y_in, x_ood, centres)
    sum(terms.values()).backward()
    out = {f"term.{k}": v.detach() for k, v in terms.items()}
    out.update({f"grad.{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    z, cc, oc = _z_case()
    z.requires_grad_(True)
    loss = losses.official_distance_loss(z, y_in, cc, oc, tau=0.3)
    loss.backward()
    out["z.loss"], out["z.grad"] = loss.detach(), z.grad.clone()
    out["z.pull"] = losses.official_distance_loss(z.detach(), y_in, cc, oc, tau=0.3, use_push=False)
    out["x_adv"] = losses.anti_adversarial_step(model, x_ood, 0.07)
    return out


def _rank_main(rank: int, store: str, result_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from woodseg.wood import losses
    from woodseg.wood.objective import WoodObjective

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    model, cfg, x_in, y_in, x_ood, centres = _official_setup()
    runner = DistributedDataParallel(WoodObjective(model, cfg))
    sl = slice(rank, None, WORLD)  # the rows StepBatchSampler gives this rank
    terms = runner(x_in[sl], y_in[sl], x_ood[sl], centres)
    sum(terms.values()).backward()  # DDP averages the gradients over the ranks
    out = {f"term.{k}": v.detach() for k, v in terms.items()}
    out.update({f"grad.{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    # uneven slices (5 and 3 rows): the distance loss alone, on a leaf feature tensor
    z, cc, oc = _z_case()
    rows = slice(0, 5) if rank == 0 else slice(5, 8)
    z_local = z[rows].clone().requires_grad_(True)
    loss = losses.official_distance_loss(z_local, y_in[rows], cc, oc, tau=0.3, across_ranks=True)
    loss.backward()
    out["z.loss"], out["z.grad"] = loss.detach(), z_local.grad.clone()
    out["z.loss_unsynced"] = losses.official_distance_loss(z_local.detach(), y_in[rows], cc, oc, tau=0.3)
    out["z.pull"] = losses.official_distance_loss(z_local.detach(), y_in[rows], cc, oc, tau=0.3, use_push=False,
                                                  across_ranks=True)
    out["x_adv"] = losses.anti_adversarial_step(model, x_ood[sl], 0.07, across_ranks=True)
    torch.save(out, Path(result_dir) / f"rank{rank}.pt")
    del runner, model  # the teardown that avoids Gloo's exit abort (see train/distributed.py)
    import gc

    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_official_loss_two_gloo_processes_equal_one(tmp_path):
    import torch.multiprocessing as mp

    single = _single_process()
    mp.spawn(_rank_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # the loss the ranks compute averages to the single-process loss, term by term
    for key in [k for k in single if k.startswith("term.")]:
        mean = sum(r[key] for r in ranks) / WORLD
        torch.testing.assert_close(mean, single[key], rtol=1e-5, atol=1e-6, msg=key)
    # DDP's averaged gradients equal the single-process ones, on both ranks
    grads = [k for k in single if k.startswith("grad.")]
    assert grads and all(single[k].abs().sum() > 0 for k in grads if k.endswith("classifier.weight"))
    for r in ranks:
        for key in grads:
            torch.testing.assert_close(r[key], single[key], rtol=1e-4, atol=1e-6, msg=key)
    # uneven slices: still exact (each rank's rows get 1/W of their gradient through DDP's averaging)
    ref = single["z.loss"]
    torch.testing.assert_close(sum(r["z.loss"] for r in ranks) / WORLD, ref)
    torch.testing.assert_close(torch.cat([r["z.grad"] for r in ranks]) / WORLD, single["z.grad"])
    torch.testing.assert_close(sum(r["z.pull"] for r in ranks) / WORLD, single["z.pull"])  # pull term alone
    # without the gather the ranks would not compute the single-process loss
    assert abs(float(sum(r["z.loss_unsynced"] * (5 if i == 0 else 3) for i, r in enumerate(ranks))) / 8
               - float(ref)) > 1e-4
    # the perturbation's normaliser and clamp bounds span the global OoD batch
    torch.testing.assert_close(torch.stack([ranks[0]["x_adv"], ranks[1]["x_adv"]], 1).flatten(0, 1),
                               single["x_adv"])


@pytest.mark.slow
def test_torchrun_runs_every_stage_with_per_image_stages_sharded(tiny_voc, tmp_path):
    """`torchrun -m woodseg run`: DDP training, then seeds and evaluation split exactly over the processes."""
    import json

    import numpy as np

    torchrun = torchrun_path()
    from refine_helpers import REFINE

    refine = {**REFINE, "wood.variant": "none", "runtime.cam_batch_size": 2, "irn.batch_size": 8}
    out = tmp_path / "run"
    over = tiny_overrides(tiny_voc, out, **refine)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "run", "-q",
                           "--to", "masks", *over], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for product in ("seeds", "ir_labels", "masks"):
        assert sorted(p.name for p in (out / product / "shards").iterdir()) == ["shard-000-of-002.json",
                                                                                 "shard-001-of-002.json"]
    assert json.loads((out / "irn" / "stage.json").read_text())["config"]["world"] == 2  # IRN trained as DDP
    sharded = json.loads((out / "eval" / "seeds.json").read_text())
    # the same seeds, numbers, IR labels and masks (from the same IRN) as one process
    one = tmp_path / "one"
    shutil.copytree(out / "classifier", one / "classifier")
    shutil.copytree(out / "irn", one / "irn")
    single = tiny_overrides(tiny_voc, one, **refine)
    for args in (["run", "--from", "cam", "--to", "ir_labels"], ["masks"]):
        proc = subprocess.run([sys.executable, "-m", "woodseg", *args, "-q", *single],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for f in sorted((out / "seeds").glob("*.npz")):
        with np.load(f) as a, np.load(one / "seeds" / f.name) as b:
            np.testing.assert_array_equal(a["high_res"], b["high_res"])
    for product in ("ir_labels", "masks"):
        files = sorted((out / product).glob("*.png"))
        assert len(files) == 24
        for f in files:
            np.testing.assert_array_equal(load_mask(f), load_mask(one / product / f.name))
    assert json.loads((one / "eval" / "seeds.json").read_text())["train"]["best"] == sharded["train"]["best"]
    # IRN trained by one process on the same IR labels equals the 2-process DDP one (global batch unchanged)
    solo = tmp_path / "solo"
    for product in ("classifier", "seeds", "ir_labels"):
        shutil.copytree(out / product, solo / product)
    proc = subprocess.run([sys.executable, "-m", "woodseg", "irn", "-q", *tiny_overrides(tiny_voc, solo, **refine)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ddp, single_irn = load_checkpoint(out / "irn" / "last.pt"), load_checkpoint(solo / "irn" / "last.pt")
    assert ddp["step"] == single_irn["step"] > 0
    for key, value in single_irn["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-4, atol=1e-5, msg=f"irn: {key}")
