"""``woodseg ood``: build candidate pools, rank them by p(c), review them in the browser, export lists.

The hard-OoD collection of paper Sec. 3.1, one command per step (docs/ood-collection.md is the guide):

    woodseg ood mapping        [--out my.yaml]                    show / copy the VOC -> OpenImages mapping
    woodseg ood pool-openimages --labels L.csv --descriptions D.csv --out pool.txt [--image-root DIR] ...
    woodseg ood pool-folder    SOURCE --out pool.txt              any folder (or list) of images
    woodseg ood rank           --checkpoint last.pt --pool pool.txt --out ranked/ [--shard i/n] [--threshold 0.5]
    woodseg ood merge          ranked/                            join the shards' parts
    woodseg ood review         --ranked ranked/ --db review.sqlite [--target-n 50] [--host --port --token]
    woodseg ood status         --db review.sqlite                 progress per class, r and n/(1-r)
    woodseg ood export         --db review.sqlite --out export/   ood_list.txt + manifest + decision log
"""

from __future__ import annotations

import getpass
import logging
import secrets
from pathlib import Path

import typer

from woodseg.data.classes import check_class_names
from woodseg.errors import ConfigError

app = typer.Typer(help="Hard-OoD collection (paper Sec. 3.1): pool -> rank -> review -> export.", no_args_is_help=True)
log = logging.getLogger(__name__)


def _classes_opt(text: str | None) -> list[str] | None:
    if text is None:
        return None
    path = Path(text)
    names = path.read_text(encoding="utf-8").split() if path.is_file() else [t.strip() for t in text.split(",")]
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"no class names in '{text}'", fix="pass comma-separated names or a file with one per line")
    check_class_names(names, path if path.is_file() else "--classes", fix="name each class once")
    return names


@app.command("mapping")
def mapping_cmd(
    mapping: Path | None = typer.Option(None, help="A mapping YAML to check and show; default: the shipped VOC one."),
    out: Path | None = typer.Option(None, help="Copy the mapping to this file (to edit it for your classes)."),
) -> None:
    """Show the target-class -> OpenImages label mapping (or copy it to edit)."""
    from woodseg.fsutil import atomic_write_text
    from woodseg.ood.mapping import bundled_mapping_path, load_mapping

    m = load_mapping(mapping)
    src = Path(m.source)
    if out is not None:
        atomic_write_text(out, src.read_text(encoding="utf-8"))
        typer.echo(f"wrote {out}")
        return
    for cls, refs in m.classes.items():
        typer.echo(f"{cls:>14}: " + ", ".join(f"{r.name or '?'} {r.mid or ''}".strip() for r in refs))
    typer.echo(f"(from {src}{'; shipped' if src == bundled_mapping_path() else ''})")


@app.command("pool-openimages")
def pool_openimages(
    labels: list[Path] = typer.Option(..., "--labels", help="Human-verified image-level label CSV(s) (ImageID,Source,LabelName,Confidence); .csv or .csv.gz. Repeat for several."),
    descriptions: Path = typer.Option(..., help="OpenImages class descriptions CSV (class-descriptions*.csv), to check the mapping's MIDs."),
    out: Path = typer.Option(..., help="Pool list to write (pool.txt; .csv metadata and .json provenance beside it)."),
    machine_labels: list[Path] = typer.Option([], "--machine-labels", help="Machine-generated label CSV(s): Confidence >= 0.5 counts as present."),
    mapping: Path | None = typer.Option(None, help="Mapping YAML (default: the shipped 20 Pascal classes)."),
    classes: str | None = typer.Option(None, help="Target classes (comma-separated or a file); default: every class of the mapping."),
    hierarchy: Path | None = typer.Option(None, help="bbox_labels_600_hierarchy.json: also exclude descendants and parts."),
    image_root: Path | None = typer.Option(None, help="Folder holding the downloaded <ImageID>.jpg files (the pool's root)."),
    prefix: str = typer.Option("", help="Text before <ImageID>.jpg in each line, e.g. 'train/' when the root holds subsets."),
    only_existing: bool = typer.Option(False, help="Keep only ids whose file exists under --image-root/--prefix."),
    sample: int | None = typer.Option(None, min=1, help="Keep a random subset of this many candidates (reproducible)."),
    seed: int = typer.Option(0, help="Seed for --sample."),
) -> None:
    """Candidate OoD pool from OpenImages label files: images with none of the target classes.

    Streams the CSVs (tens of millions of rows are fine). An image is left out if any positive label (human Confidence 1, machine >= 0.5) is a mapped MID.

    Lines are <prefix><ImageID>.jpg relative to --image-root; ranking reads the images from there.
    """
    from tqdm import tqdm

    from woodseg.ood.mapping import load_mapping, read_hierarchy, resolve_mapping
    from woodseg.ood.openimages import (
        build_openimages_pool,
        read_class_descriptions,
        restrict_to_existing,
        sample_ids,
    )
    from woodseg.ood.pool import write_pool

    m = load_mapping(mapping)
    targets = _classes_opt(classes)
    if targets is not None:
        m = m.restrict(targets)
    desc = read_class_descriptions(descriptions)
    resolved = resolve_mapping(m, desc, read_hierarchy(hierarchy) if hierarchy else None, str(descriptions))
    with tqdm(unit="row", unit_scale=True, desc="label rows") as bar:
        ids, stats = build_openimages_pool(labels, resolved, machine_label_files=machine_labels, progress=bar.update)
    typer.echo(f"{stats.images_seen} images seen, {stats.images_excluded} carry a target class, {len(ids)} candidates")
    if only_existing:
        if image_root is None:
            raise ConfigError("--only-existing needs --image-root", fix="pass the folder holding the images")
        ids = restrict_to_existing(ids, image_root / prefix)
        typer.echo(f"{len(ids)} of them are downloaded under {image_root / prefix}")
    if sample is not None:
        ids = sample_ids(ids, sample, seed)
    write_pool(out, [f"{prefix}{i}.jpg" for i in ids], root=image_root if image_root is not None else out.parent,
               source="openimages", image_ids=ids,
               info={"label_files": [str(p) for p in labels], "machine_label_files": [str(p) for p in machine_labels],
                     "mapping": m.source, "classes": list(m.class_names), "hierarchy": str(hierarchy) if hierarchy else None,
                     "excluded_mids": {c: sorted(v) for c, v in resolved.mids.items()},
                     "images_seen": stats.images_seen, "images_excluded": stats.images_excluded,
                     "positive_rows_per_class": stats.positive_rows_per_class, "rows": stats.rows,
                     "sample": sample, "seed": seed})
    typer.echo(f"wrote {out} ({len(ids)} images)")


@app.command("pool-folder")
def pool_folder(
    source: Path = typer.Argument(..., help="A folder of images (searched recursively) or a list file of image paths."),
    out: Path = typer.Option(..., help="Pool list to write (pool.txt)."),
    root: Path | None = typer.Option(None, help="Image root for a list file's relative paths (default: the list's folder)."),
    exclude: Path | None = typer.Option(None, help="File of paths or ids to leave out (e.g. your labelled images)."),
) -> None:
    """Candidate OoD pool from your own images: the 'discarded' set of a data collection."""
    from woodseg.ood.pool import apply_exclusions, pool_from_images, read_exclusions, write_pool

    ood, base = pool_from_images(source, root)
    if exclude is not None:
        ood = apply_exclusions(ood, read_exclusions(exclude))
    write_pool(out, ood.ids, root=base, source=f"folder:{source}")
    typer.echo(f"wrote {out} ({len(ood)} images under {base})")


@app.command("rank")
def rank_cmd(
    pool: Path = typer.Option(..., help="Pool list from pool-openimages / pool-folder."),
    out: Path = typer.Option(..., help="Ranking folder (parts/, then ranked.json and candidates/)."),
    config: str | None = typer.Option(None, "--config", "-c", help="The run's config (YAML or bundled name): resolution, batch size, device, threads."),
    overrides: list[str] = typer.Argument(None, help="Config overrides, e.g. wood.ood_long_side=96 runtime.score_batch_size=32."),
    checkpoint: Path | None = typer.Option(None, help="Trained classifier; default: the config's out_dir/classifier/last.pt."),
    root: Path | None = typer.Option(None, help="Image root (default: from the pool's .json, else its folder)."),
    shard: str | None = typer.Option(None, help="This process's share, i/n (0-based). Run every i of n, then `merge`. Default: torchrun's RANK/WORLD_SIZE, else the whole pool."),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Keep images with p(c) >= this for some class (paper: 0.5)."),
    flag: list[str] = typer.Option([], "--flag", help="Also compute likely-positive evidence: compactness (free) and/or stability (4 extra passes per candidate)."),
    flush_every: int = typer.Option(256, min=1, help="Write results to disk every this many images (resume point)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to score more than 2x away from the classifier's training resolution."),
) -> None:
    """Score every pool image with the classifier and rank candidates per class by p(c).

    Images are fed at the classifier's training resolution (recorded in its checkpoint) unless the config sets wood.ood_long_side (a size or 'native'); runtime.score_batch_size, runtime.device, runtime.threads, runtime.workers and data.on_bad_image come from the config too.

    Resumable: re-run the same command after an interruption and it continues.

    Sharded: start --shard 0/4 ... --shard 3/4 on several processes or machines (same --out on a shared disk, or copy the parts/ folders together), then `woodseg ood merge`. With one shard it merges by itself. Under `torchrun --nproc_per_node=N -m woodseg ood rank ...` each process scores its exact share and rank 0 merges once all are done.
    """
    from woodseg.config import load_config
    from woodseg.models.cam_net import classifier_meta
    from woodseg.ood.rank import Shard, rank_shard
    from woodseg.ood.resolution import scoring_long_side
    from woodseg.runtime.amp import set_amp_mode
    from woodseg.runtime.device import set_threads
    from woodseg.runtime.paths import RunPaths

    cfg = load_config(config, overrides or [])
    ckpt = checkpoint if checkpoint is not None else RunPaths.of(cfg).checkpoint
    if not ckpt.is_file():
        raise ConfigError(f"classifier checkpoint {ckpt} does not exist",
                          fix="pass --checkpoint, or -c the config of the run that trained it")
    long_side, train_range = scoring_long_side(cfg.wood.ood_long_side, classifier_meta(ckpt), cfg.train.resize_long)
    set_threads(cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
    sh = Shard.resolve(shard)
    where = rank_shard(ckpt, pool, out, root=root, shard=sh, threshold=threshold,
                       batch_size=cfg.runtime.score_batch_size, long_side=long_side, train_resize_long=train_range,
                       strict=strict, device=cfg.runtime.device, flags=flag, on_bad_image=cfg.data.on_bad_image,
                       flush_every=flush_every, workers=cfg.runtime.workers)
    side = "native size" if long_side is None else f"long side {long_side} px"
    if shard is None and sh.count > 1:  # torchrun: wait for every rank's part, then rank 0 merges (and verifies)
        from woodseg.ood.rank import merge_parts
        from woodseg.train.distributed import hold_process_group, stage_barrier

        with hold_process_group(cfg.runtime.device) as info:
            stage_barrier(cfg.runtime.device)
            if info.is_main:
                merge_parts(out, threshold=threshold)
                typer.echo(f"ranked candidates of {sh.count} processes (at {side}) in {out}/candidates")
        return
    if sh.count == 1:
        typer.echo(f"ranked candidates (at {side}) in {out}/candidates; next: woodseg ood review --ranked {out} --db {out}/review.sqlite")
    else:
        typer.echo(f"shard {sh.index}/{sh.count} done (at {side}) in {where}; when all are done: woodseg ood merge {out}")


@app.command("merge")
def merge_cmd(
    out: Path = typer.Argument(..., help="Ranking folder whose parts/ holds every shard."),
    threshold: float | None = typer.Option(None, min=0.0, max=1.0, help="Re-threshold p(c) (default: the one used for ranking)."),
) -> None:
    """Join the shards' parts into ranked candidates (refuses mixed checkpoints/pools or missing shards)."""
    from woodseg.ood.rank import merge_parts

    ranked = merge_parts(out, threshold=threshold)
    counts = ", ".join(f"{n} {len(c)}" for n, c in ranked.candidates.items())
    typer.echo(f"candidates per class (p >= {ranked.meta['threshold']}): {counts}")


def _settings(target_n: int | None, order: str | None, flag: str | None, flag_threshold: float | None,
              reject_everywhere: bool | None, current: object | None):
    from dataclasses import replace

    from woodseg.ood.review.store import ReviewSettings

    base = current if isinstance(current, ReviewSettings) else ReviewSettings()
    changes = {k: v for k, v in dict(target_n=target_n, order=order, flag=flag, flag_threshold=flag_threshold,
                                     reject_everywhere=reject_everywhere).items() if v is not None}
    return replace(base, **changes).check()


@app.command("review")
def review_cmd(
    db: Path = typer.Option(..., help="Review database (SQLite). Created from --ranked the first time; reopened to resume."),
    ranked: Path | None = typer.Option(None, help="Ranking folder (needed to create the database)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Anything but loopback needs --token."),
    port: int = typer.Option(8765, min=1, max=65535),
    token: str | None = typer.Option(None, help="Access token (required off loopback); 'auto' makes one and prints the URL."),
    target_n: int | None = typer.Option(None, min=1, help="Hard OoDs wanted per class (default 50; kept across restarts)."),
    order: str | None = typer.Option(None, help="Review order: p (paper), demote, hide, flagged-first (these need --flag)."),
    flag: str | None = typer.Option(None, help="Evidence used by the order: compactness or stability (computed by rank --flag)."),
    flag_threshold: float | None = typer.Option(None, help="Evidence at or above this flags a likely positive (default 0.5)."),
    reject_everywhere: bool | None = typer.Option(None, "--reject-everywhere/--per-class-rejects", help="A reject for one class rejects the image for all (default)."),
    reviewer: str = typer.Option("", help="Default reviewer name shown in the page (default: your login)."),
    root: Path | None = typer.Option(None, help="New image root if the pool images moved."),
    export_dir: Path | None = typer.Option(None, help="Where the page's 'write export' button writes (default: <db folder>/export)."),
) -> None:
    """Review ranked candidates in the browser: keep the hard OoDs, reject images showing a target class.

    Keys: k keep, r reject, s skip, arrows move, u undo, g grid, ? help.

    Every decision is saved as it is made; stop the server any time and start it again with the same --db to resume.
    """
    from woodseg.ood.rank import load_ranked
    from woodseg.ood.review.app import check_bind, serve
    from woodseg.ood.review.store import ReviewStore

    if token == "auto":
        token = secrets.token_urlsafe(18)
    check_bind(host, token)
    rk = load_ranked(ranked) if ranked is not None else None
    current = ReviewStore(db).settings if db.exists() else None
    settings = _settings(target_n, order, flag, flag_threshold, reject_everywhere, current)
    store = ReviewStore.open_or_create(db, rk, settings)
    if root is not None:
        store.relocate(root)
    serve(store, host=host, port=port, token=token, reviewer=reviewer or _login(), export_dir=export_dir)


def _login() -> str:
    try:
        return getpass.getuser()[:64] or "reviewer"
    except (KeyError, OSError):
        return "reviewer"


@app.command("status")
def status_cmd(db: Path = typer.Option(..., help="Review database.")) -> None:
    """Print review progress per class: reviewed, kept, rejected, r and expected cost n/(1-r)."""
    from woodseg.ood.review.store import ReviewStore

    store = ReviewStore(db)
    typer.echo(f"{'class':>14} {'cand':>6} {'reviewed':>8} {'kept':>5} {'rejected':>8} {'r':>5} {'n/(1-r)':>8}  target")
    for p in store.progress().values():
        r = "-" if p.r is None else f"{p.r:.2f}"
        cost = "-" if p.expected_cost is None else f"{p.expected_cost:.1f}"
        mark = "reached" if p.reached else ("exhausted" if p.exhausted else f"{p.kept}/{p.target_n}")
        typer.echo(f"{p.name:>14} {p.candidates:>6} {p.reviewed:>8} {p.kept:>5} {p.rejected:>8} {r:>5} {cost:>8}  {mark}")


@app.command("export")
def export_cmd(
    db: Path = typer.Option(..., help="Review database."),
    out: Path = typer.Option(..., help="Folder for ood_list.txt, manifest.csv|json, decisions.jsonl, export.json."),
    fmt: str = typer.Option("csv", "--format", help="Manifest format: csv or json."),
) -> None:
    """Write the reviewed ood_list.txt (the trainer's and the official format) and a manifest with checksums."""
    from woodseg.ood.export import write_export
    from woodseg.ood.review.store import ReviewStore

    if fmt not in ("csv", "json"):
        raise ConfigError(f"--format must be csv or json, got '{fmt}'", fix="pass csv or json")
    res = write_export(ReviewStore(db), out, fmt)  # type: ignore[arg-type]
    typer.echo(f"wrote {res.ood_list} ({res.num_images} images) and {res.manifest}")
