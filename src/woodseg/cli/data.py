"""``woodseg data``: turn the public dataset releases into the layouts the stages read.

    woodseg data prepare-voc  --voc VOCtrainval_11-May-2012.tar --sbd benchmark.tgz --out data/  [--no-verify]
    woodseg data prepare-coco --annotations annotations/ --images-root COCO/ --out data/COCO14 [--split S] [--processes N]
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Prepare datasets: VOC 2012 + SBD (train_aug), COCO-2014.", no_args_is_help=True)


@app.command("prepare-voc")
def prepare_voc_cmd(
    voc: Path = typer.Option(..., help="VOCtrainval_11-May-2012.tar, or an extracted VOCdevkit/VOC2012 folder."),
    sbd: Path = typer.Option(..., help="SBD's benchmark.tgz, or an extracted benchmark_RELEASE folder."),
    out: Path = typer.Option(..., help="Output folder; the dataset lands in OUT/VOC2012."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Check the archives' published md5 sums (skip for repacked archives)."),
) -> None:
    """Build SegmentationClassAug, the train_aug list (10,582 images) and check the labels (resumable)."""
    from woodseg.data.prepare_voc import prepare_voc

    res = prepare_voc(voc, sbd, out, verify=verify, progress=typer.echo)
    typer.echo(f"train_aug: {res.train_aug} images, val: {res.val} images, in {res.root}")
    typer.echo(f"use it with: data.root={res.root} data.train_split=train_aug")


@app.command("prepare-coco")
def prepare_coco_cmd(
    annotations: Path = typer.Option(..., help="Folder with instances_<split>.json (annotations_trainval2014.zip)."),
    images_root: Path = typer.Option(..., help="Folder holding the <split>/ image folders (train2014/, val2014/)."),
    out: Path = typer.Option(..., help="Output folder (data.root for format coco); images are linked, not copied."),
    split: list[str] = typer.Option(["train2014", "val2014"], help="Splits to prepare (repeat the option)."),
    processes: int = typer.Option(0, min=0, help="Worker processes drawing the masks (0: one per CPU core)."),
) -> None:
    """Write COCO-2014 semantic masks (80 classes + background), labels and split lists (resumable)."""
    from woodseg.data.coco import prepare_coco

    summary = prepare_coco(annotations, images_root, out, tuple(split), progress=typer.echo,
                           processes=processes or None)
    for name, n in summary["splits"].items():
        typer.echo(f"{name}: {n} images ({summary['unlabelled'][name]} with no annotation)")
    typer.echo(f"use it with: -c coco14_cam_r50 data.root={out}")
