"""Class lists: every list that names the classifier's classes must name each class once.

A class named twice gets two classifier outputs but one name: candidate files, review queues and
per-class scores then collide. Every entry point (config, classes.txt, label files, checkpoints,
rankings, OoD mappings) checks its list with :func:`check_class_names`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TypeVar

from woodseg.errors import DataError

T = TypeVar("T", bound=Hashable)


def duplicate_names(names: Iterable[T]) -> list[T]:
    """Names (or any values) listed more than once, in order of their second appearance."""
    seen: set[T] = set()
    dups: list[T] = []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    return dups


def check_class_names(names: Iterable[str], where: str | Path | None = None,
                      fix: str = "name each class once") -> tuple[str, ...]:
    """The names as a tuple; a duplicate or blank name is a :class:`DataError` naming it and ``where``."""
    names = tuple(names)
    dups = duplicate_names(names)
    if dups:
        raise DataError(f"class list names {', '.join(repr(d) for d in dups)} more than once ({', '.join(names)})",
                        path=where, fix=fix)
    if any(not str(n).strip() for n in names):
        raise DataError("class list holds an empty class name", path=where, fix="remove the empty name")
    return names
