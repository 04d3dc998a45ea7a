"""Repository hygiene: code and docs cite what a reader can open (the paper, public repositories), never
private notes; test modules have unique names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIVATE = re.compile(r"reference-spec|refinement-facts|environment.notes|pitfall \d|\.\./shared")


def test_sources_and_docs_cite_only_public_material():
    files = [p for d in ("src", "docs", "benchmarks") for p in (ROOT / d).rglob("*")
             if p.suffix in {".py", ".md", ".yaml", ".html", ".j2", ".js"} and "egg-info" not in str(p)]
    files.append(ROOT / "README.md")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if PRIVATE.search(line)]
    assert not hits, "\n".join(hits)


def test_test_files_have_unique_names():
    """Test folders are not packages, so pytest imports test modules by file name: two alike would collide."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(names) == sorted(set(names)), sorted({n for n in names if names.count(n) > 1})
