"""Check that every measured number the README quotes is in the result file it cites.

A README section (the text under one heading) that links ``benchmarks/results/<file>`` quotes numbers
from those files. In such a section:

- every ``mean ± std`` anywhere in the text must appear in one of the linked files (written ``+-`` or ``±``);
- every plain number in a table cell (bold allowed, a trailing ``(+x.x)`` difference ignored) must appear
  in one of them; header rows, columns or rows whose label starts with "paper" (the paper's numbers) and signed
  differences (``+4.1``, derived by subtraction) are not checked.

A ``mean ± std``, or a decimal number in a table cell, in a section that links no result file is an error
too: a measured number needs its file.
Prose numbers outside tables are not checked. ``python benchmarks/readme_numbers.py`` prints every
disagreement and exits 1 if there is one; ``tests/test_readme_numbers.py`` runs it in CI.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\(?(benchmarks/results/[\w.\-/]+)\)?")
PM = re.compile(r"(\d+(?:\.\d+)?)\s*±\s*(\d+(?:\.\d+)?)")
PLAIN = re.compile(r"^\**(\d+(?:\.\d+)?)\**(?:\s*\([+−-]\d+(?:\.\d+)?\))?$")


@dataclass(frozen=True)
class Mismatch:
    section: str
    quoted: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        if not self.files:
            return f"README section '{self.section}': {self.quoted} is quoted, but the section links no result file"
        return f"README section '{self.section}': {self.quoted} is not in {', '.join(self.files)}"


def _sections(text: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = [("(top)", [])]
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("#"):
            out.append((line.lstrip("#").strip(), []))
        else:
            out[-1][1].append(line)
    return out


def _contains(haystack: str, number: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", haystack) is not None


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _table_numbers(lines: list[str]) -> list[str]:
    """Plain numbers in table body cells, skipping header rows and the paper's columns/rows."""
    found: list[str] = []
    header: list[str] | None = None
    for line in lines:
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line.replace("\\|", "/"))
        if header is None:
            header = cells
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        if cells[0].lower().startswith("paper"):
            continue
        for i, cell in enumerate(cells[1:], start=1):
            if i < len(header) and header[i].lower().startswith("paper"):
                continue
            m = PLAIN.match(cell)
            if m:
                found.append(m.group(1))
    return found


def check(readme: Path, root: Path) -> list[Mismatch]:
    """Every disagreement between the README's quoted numbers and the files its sections link."""
    problems: list[Mismatch] = []
    for title, lines in _sections(readme.read_text(encoding="utf-8")):
        body = "\n".join(lines)
        files = tuple(dict.fromkeys(m.group(1) for m in LINK.finditer(body) if (root / m.group(1)).is_file()))
        texts = [(root / f).read_text(encoding="utf-8").replace("+-", "±") for f in files]
        for m in PM.finditer(body):
            quoted = f"{m.group(1)} ± {m.group(2)}"
            if not any(re.search(rf"(?<![\d.]){re.escape(m.group(1))}\s*±\s*{re.escape(m.group(2))}(?![\d])", t)
                       for t in texts):
                problems.append(Mismatch(title, quoted, files))
        for number in _table_numbers(lines):
            if not files and "." not in number:
                continue  # counts and settings (batch 16, 5 epochs) in tables that quote no result
            if not any(_contains(t, number) for t in texts):
                problems.append(Mismatch(title, number, files))
    return problems


def main() -> int:
    problems = check(ROOT / "README.md", ROOT)
    for p in problems:
        print(p)
    print(f"{len(problems)} disagreement(s) between README.md and benchmarks/results/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
