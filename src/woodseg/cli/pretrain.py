"""``woodseg pretrain``: the backbone weights the benchmark's classifiers start from (its "ImageNet").

    woodseg pretrain                       # embedded corpus -> runs/pretrain/corpus-resnet10.pth (+ .json)
    woodseg pretrain --corpus my_imagefolder --out runs/my_pretrain --epochs 30
    woodseg pretrain --ship                # rebuild the weights shipped in woodseg/weights/ (maintainers)
    woodseg pretrain --verify-shipped      # rebuild into --out and check the sha256 equals the shipped one
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer


def register_pretrain_command(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain_cmd(
        corpus: Path | None = typer.Option(None, help="ImageFolder corpus (<root>/train/<category>/*.jpg, "
                                                      "<root>/val/...); default: the embedded corpus, generated once."),
        out: Path = typer.Option(Path("runs/pretrain"), help="Output folder (checkpoint, weights, record)."),
        epochs: int | None = typer.Option(None, min=1, help="Epochs (default: the shipped recipe's)."),
        threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: the recipe's 2)."),
        restart: bool = typer.Option(False, help="Ignore a checkpoint in --out and start over."),
        ship: bool = typer.Option(False, help="Write into the package's weights folder (the shipped file)."),
        verify_shipped: bool = typer.Option(False, help="Rebuild with the shipped recipe and compare sha256."),
    ) -> None:
        """Pretrain a ResNet-10 on an object-category corpus; prints the held-out top-1 and the sha256."""
        from woodseg.data.benchmark.corpus import CORPUS_VERSION, CorpusSpec, ensure_corpus
        from woodseg.models.shipped import WEIGHTS_DIR, shipped_record
        from woodseg.train.pretrain import PretrainSettings, pretrain

        settings = PretrainSettings()
        if epochs is not None:
            settings = replace(settings, epochs=epochs)
        if threads is not None:
            settings = replace(settings, threads=threads)
        provenance: dict[str, object] = {}
        if corpus is None:
            spec = CorpusSpec()
            corpus = ensure_corpus(spec)
            provenance = {"embedded": True, "version": CORPUS_VERSION, "spec": spec.to_dict()}
        if (ship or verify_shipped) and (epochs is not None or threads is not None or provenance.get("embedded") is None):
            raise typer.BadParameter("--ship and --verify-shipped use the shipped recipe and the embedded corpus only")
        dest = WEIGHTS_DIR if ship else out
        weights = pretrain(corpus, dest, settings, weights_name="corpus-resnet10.pth", restart=restart,
                           provenance=provenance)
        import json

        record = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
        typer.echo(f"{weights}: val top-1 {record['val_top1']:.1f}% on {record['corpus']['val_images']} held-out "
                   f"corpus images, sha256 {record['sha256']}")
        if ship:
            (dest / "checkpoint.pth").unlink(missing_ok=True)
        if verify_shipped:
            want = shipped_record("corpus-resnet10")["sha256"]
            same = want == record["sha256"]
            typer.echo(f"shipped sha256 {want}: {'reproduced' if same else 'NOT reproduced'}")
            raise typer.Exit(0 if same else 1)
