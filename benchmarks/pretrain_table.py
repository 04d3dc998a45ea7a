"""The shipped pretraining run as a result file: ``python benchmarks/pretrain_table.py``.

Reads the record ``woodseg pretrain`` wrote beside the shipped weights (``src/woodseg/weights/
corpus-resnet10.json``) and writes ``benchmarks/results/pretrain.md``: recipe, corpus, held-out top-1 per
epoch, wall time and sha256, so the README quotes a result file like every other number.
"""

from __future__ import annotations

from pathlib import Path

from woodseg.fsutil import atomic_write_text
from woodseg.models.shipped import WEIGHTS_DIR, shipped_record

HERE = Path(__file__).resolve().parent


def main() -> None:
    r = shipped_record("corpus-resnet10")
    s, c = r["settings"], r["corpus"]
    size = (WEIGHTS_DIR / "corpus-resnet10.pth").stat().st_size
    lines = ["# The shipped backbone: corpus-resnet10", "",
             f"Made by `woodseg pretrain` with the default (shipped) recipe (torch {r['torch']}, {s['threads']} CPU threads, "
             f"{r['seconds'] / 60:.1f} min); {size / 2**20:.1f} MiB; sha256 `{r['sha256']}`.", "",
             f"Corpus: embedded pretraining corpus v{c.get('version')} ({c['categories']} procedural object "
             f"categories, none a benchmark class; {c['train_images']} training and {c['val_images']} held-out "
             f"images of {c.get('spec', {}).get('size', '?')} px).", "",
             f"Recipe: {s['backbone']}, {s['epochs']} epochs, batch {s['batch_size']}, SGD (Nesterov, momentum "
             f"{s['momentum']}) lr {s['lr']} with {s['warmup_epochs']} warm-up epochs then cosine, weight decay "
             f"{s['weight_decay']} (not on BN and biases), label smoothing {s['label_smoothing']}, random-resized "
             f"crops (area {s['crop_scale'][0]}-{s['crop_scale'][1]}) and flips, seed {s['seed']}.", "",
             f"Held-out top-1 after the last epoch: **{r['val_top1']:.1f} %** (chance {100 / c['categories']:.1f} %).",
             "", "| epoch | training loss (last step) | held-out top-1 (%) |", "|---|---|---|"]
    lines += [f"| {h['epoch']:.0f} | {h['loss']:.3f} | {h['val_top1']:.1f} |" for h in r["history"]]
    lines += ["", "Command: `python benchmarks/pretrain_table.py` (from the record `woodseg pretrain` wrote).", ""]
    atomic_write_text(HERE / "results" / "pretrain.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
