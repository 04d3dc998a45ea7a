"""The run folder, described once: every stage asks :class:`RunPaths` for where its files are.

```
<out_dir>/
  config.yaml                             resolved config of the run
  classifier/{last.pt, metrics.jsonl, centres.npz, config.yaml, stage.json}
  seeds/<id>.npz + index.json             CAM / AdvCAM seeds (woodseg.seeds.store)
  ir_labels/<id>.png + index.json         IRN's inter-pixel relation labels (0..C, 255 = ignore)
  irn/last.pt                             the trained IRN
  masks/<id>.png + index.json             pseudo masks (VOC label indices)
  segmenter/last.pt                       DeepLab-v2
  predictions/<split>[-crf]/<id>.png + index.json
  eval/<product>.json                     seeds.json, masks.json, predictions-<split>.json
  report.html
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX = "index.json"
STAGE_RECORD = "stage.json"


@dataclass(frozen=True)
class RunPaths:
    """Paths of one run folder (``cfg.out_dir``)."""

    root: Path

    @classmethod
    def of(cls, cfg: Any) -> RunPaths:
        """The run folder of a :class:`woodseg.config.Config` (anything with ``out_dir``)."""
        return cls(Path(cfg.out_dir))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    # classifier -------------------------------------------------------------------------------------------
    @property
    def classifier(self) -> Path:
        return self.root / "classifier"

    @property
    def checkpoint(self) -> Path:
        return self.classifier / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.classifier / "metrics.jsonl"

    @property
    def centres(self) -> Path:
        return self.classifier / "centres.npz"

    # per-image products -----------------------------------------------------------------------------------
    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def ir_labels(self) -> Path:
        return self.root / "ir_labels"

    @property
    def irn(self) -> Path:
        return self.root / "irn"

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def segmenter(self) -> Path:
        return self.root / "segmenter"

    def predictions(self, split: str, crf: bool = False) -> Path:
        return self.root / "predictions" / (f"{split}-crf" if crf else split)

    # evaluation and report --------------------------------------------------------------------------------
    def eval(self, product: str) -> Path:
        """``eval/<product>.json``: ``seeds``, ``masks``, ``predictions-<split>``."""
        return self.root / "eval" / f"{product}.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def ood(self) -> Path:
        return self.root / "ood"
