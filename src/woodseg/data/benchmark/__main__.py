"""``python -m woodseg.data.benchmark [--out DIR] [--seed N] [--scale F | --tiny] [--variant NAME] [--force]``

Generates (or reuses) the benchmark and prints where it is, how long generation took, its size on disk
and its counts. ``--variant`` picks a named variant (:mod:`woodseg.data.benchmark.variants`; ``--list-variants``
shows them). Without ``--out`` it goes to the cache (see :mod:`woodseg.data.benchmark.cache`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from woodseg.data.benchmark import cache
from woodseg.data.benchmark.spec import BenchmarkSpec
from woodseg.data.benchmark.variants import VARIANTS, get_variant
from woodseg.errors import DataError


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m woodseg.data.benchmark", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the dataset exactly here (default: the cache)")
    ap.add_argument("--cache-dir", type=Path, help="cache root (default: $WOODSEG_CACHE/benchmark)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every image count")
    ap.add_argument("--tiny", action="store_true", help="the tiny test preset")
    ap.add_argument("--variant", default="default", help="named benchmark variant (default: the benchmark itself)")
    ap.add_argument("--list-variants", action="store_true", help="print the variants and exit")
    ap.add_argument("--force", action="store_true", help="regenerate even if a valid copy exists")
    args = ap.parse_args(argv)

    if args.list_variants:
        for v in VARIANTS.values():
            print(f"{v.name:18s} {v.spec().hash()}  OoD {v.ood_source:12s} {v.description}")
        return 0
    try:
        variant = get_variant(args.variant)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.tiny and variant.overrides:
        spec = BenchmarkSpec.tiny(seed=args.seed, **variant.overrides)
    else:
        spec = BenchmarkSpec.tiny(seed=args.seed) if args.tiny else variant.spec(seed=args.seed)
    if args.scale != 1.0:
        spec = spec.scaled(args.scale)
    t0 = time.perf_counter()
    before = cache.generation_count()
    if args.out is not None:
        root = args.out
        if args.force or cache.check_benchmark(root, spec) is not None:
            try:
                cache.build_benchmark(spec, root, log_fn=print)
            except DataError as exc:
                print(exc, file=sys.stderr)
                return 2
    elif args.force:
        root = cache.build_benchmark(spec, (args.cache_dir or cache.default_cache_dir()) / spec.folder_name(),
                                     log_fn=print)
    else:
        root = cache.ensure_benchmark(spec, args.cache_dir, log_fn=print)
    elapsed = time.perf_counter() - t0
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    generated = cache.generation_count() > before
    print(f"benchmark {manifest['version']} (variant '{variant.name}', OoD list: {variant.ood_source}) at {root}")
    print(f"{'generated' if generated else 'reused'} in {elapsed:.1f} s"
          + (f" (generation {manifest['generation_seconds']:.1f} s)" if generated else ""))
    print(f"size on disk: {_size(root) / 2**20:.1f} MiB in {manifest['files'] + 1} files")
    c = manifest["counts"]
    print(f"splits: {c['splits']}")
    print(f"images per class (train_aug): {c['images_per_class']['train_aug']}")
    print(f"two-class images: {c['multilabel']}; co-occurrence: {c['cooccurrence']}")
    print(f"pool: {c['pool']['kinds']}; hard contexts: {c['pool']['hard_contexts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
