"""Which OpenImages labels stand for each target class, and so which images cannot be candidate OoDs.

A mapping is YAML (format ``woodseg.openimages-mapping/1``); the 20 Pascal classes' one ships as package
data. Entries name a MID, a display name, or both. Resolution against the class descriptions CSV checks
every MID exists (a typo would silently let positives into the pool) and turns names into MIDs; with the
OpenImages hierarchy file, descendants and parts are added (an image labelled "Duck" or "Human face"
contains a bird or a person).
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from woodseg.config import load_yaml
from woodseg.data.classes import check_class_names
from woodseg.errors import ConfigError, DataError, check_file, read_text

log = logging.getLogger(__name__)

MAPPING_FORMAT = "woodseg.openimages-mapping/1"
BUNDLED_MAPPING = "voc_to_openimages.yaml"


@dataclass(frozen=True)
class LabelRef:
    """One OpenImages label as written in a mapping: a MID, a display name, or both."""

    mid: str | None
    name: str | None


@dataclass
class ClassMapping:
    """Target class -> the OpenImages labels that mark an image as containing it."""

    classes: dict[str, list[LabelRef]]
    expand_hierarchy: bool = True
    source: str = ""

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def restrict(self, targets: Sequence[str]) -> ClassMapping:
        """Keep only ``targets``; a target the mapping does not know is an error naming the mapping file."""
        check_class_names(targets, "target classes", fix="name each target class once")
        missing = [t for t in targets if t not in self.classes]
        if missing:
            raise ConfigError(
                f"class(es) {missing} have no entry in the OpenImages mapping {self.source}",
                path=self.source or None,
                fix="add them under `classes:` (copy the shipped file with `woodseg ood mapping --out my.yaml`) "
                "and pass --mapping my.yaml, or correct the class names",
            )
        return ClassMapping({t: self.classes[t] for t in targets}, self.expand_hierarchy, self.source)


@dataclass
class ResolvedMapping:
    """MIDs per target class after name lookup and (optional) hierarchy expansion."""

    mids: dict[str, set[str]]
    display: dict[str, str] = field(default_factory=dict)

    def mid_to_classes(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for cls, mids in self.mids.items():
            for m in mids:
                out.setdefault(m, []).append(cls)
        return out

    def all_mids(self) -> set[str]:
        return set().union(*self.mids.values()) if self.mids else set()


def bundled_mapping_path() -> Path:
    return Path(str(importlib.resources.files("woodseg.data") / "mappings" / BUNDLED_MAPPING))


def load_mapping(path: str | Path | None = None) -> ClassMapping:
    """Read a mapping YAML (default: the shipped Pascal VOC one), checking its structure."""
    path = Path(path) if path is not None else bundled_mapping_path()
    text = read_text(path, "mapping file", "pass an existing YAML to --mapping", ConfigError)
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:  # a class written twice under `classes:` is one of these
        raise ConfigError(f"mapping is not valid YAML ({exc})", path=path,
                          fix="fix the YAML syntax; name each class once") from exc
    return parse_mapping(doc, source=str(path))


def parse_mapping(doc: Any, source: str = "<mapping>") -> ClassMapping:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("classes"), Mapping) or not doc["classes"]:
        raise ConfigError("mapping must be a mapping with a non-empty `classes:` section", path=source,
                          fix="see the shipped voc_to_openimages.yaml for the layout")
    fmt = doc.get("format", MAPPING_FORMAT)
    if fmt != MAPPING_FORMAT:
        raise ConfigError(f"unknown mapping format '{fmt}'", path=source, fix=f"set format: {MAPPING_FORMAT}")
    classes: dict[str, list[LabelRef]] = {}
    for cls, spec in doc["classes"].items():
        cls = str(cls)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"class '{cls}': expected `primary:` and `also:` lists", path=source,
                              fix="write e.g. `train: {primary: [{mid: /m/07jdr}], also: []}`")
        unknown_keys = set(spec) - {"primary", "also"}
        if unknown_keys:
            raise ConfigError(f"class '{cls}': unknown key(s) {sorted(unknown_keys)}", path=source,
                              fix="use only `primary` and `also`")
        refs = [_label_ref(e, cls, source) for key in ("primary", "also") for e in (spec.get(key) or [])]
        if not refs:
            raise ConfigError(f"class '{cls}' lists no OpenImages label", path=source,
                              fix="give at least one `primary` entry (a MID or a display name)")
        classes[cls] = refs
    return ClassMapping(classes, bool(doc.get("expand_hierarchy", True)), source)


def _label_ref(entry: Any, cls: str, source: str) -> LabelRef:
    if isinstance(entry, str):
        return LabelRef(entry, None) if entry.startswith("/") else LabelRef(None, entry)
    if isinstance(entry, Mapping) and (entry.get("mid") or entry.get("name")):
        mid = entry.get("mid")
        if mid is not None and not str(mid).startswith("/"):
            raise ConfigError(f"class '{cls}': '{mid}' is not an OpenImages MID (like /m/07jdr)", path=source,
                              fix="put display names under `name:` and MIDs under `mid:`")
        return LabelRef(str(mid) if mid else None, str(entry["name"]) if entry.get("name") else None)
    raise ConfigError(f"class '{cls}': bad entry {entry!r}", path=source,
                      fix="write each entry as {mid: /m/..., name: ...}, a bare MID or a bare display name")


def resolve_mapping(mapping: ClassMapping, descriptions: Mapping[str, str],
                    hierarchy: Mapping[str, set[str]] | None = None, descriptions_path: str = "") -> ResolvedMapping:
    """Turn names into MIDs, check every MID is known, and add hierarchy descendants when asked."""
    by_name: dict[str, list[str]] = {}
    for mid, name in descriptions.items():
        by_name.setdefault(name.casefold(), []).append(mid)
    out: dict[str, set[str]] = {}
    for cls, refs in mapping.classes.items():
        mids: set[str] = set()
        for ref in refs:
            if ref.mid is not None:
                if descriptions and ref.mid not in descriptions:
                    raise DataError(
                        f"class '{cls}': MID {ref.mid} ({ref.name or 'no name'}) is not in the class descriptions",
                        path=mapping.source or None,
                        fix=f"check the MID against {descriptions_path or 'the class descriptions CSV'} "
                        "(is it the same OpenImages version?) or remove the entry",
                    )
                if ref.name and descriptions and descriptions[ref.mid].casefold() != ref.name.casefold():
                    log.info("mapping %s: %s is called '%s' in the descriptions, not '%s'",
                             mapping.source, ref.mid, descriptions[ref.mid], ref.name)
                mids.add(ref.mid)
            else:
                assert ref.name is not None
                found = by_name.get(ref.name.casefold(), [])
                if len(found) != 1:
                    what = "no" if not found else f"{len(found)} ({', '.join(sorted(found))})"
                    raise DataError(f"class '{cls}': display name '{ref.name}' matches {what} OpenImages labels",
                                    path=mapping.source or None,
                                    fix=f"write the MID instead (look it up in {descriptions_path or 'the descriptions'})")
                mids.add(found[0])
        if hierarchy is not None and mapping.expand_hierarchy:
            mids |= descendants(mids, hierarchy)
        out[cls] = mids
    return ResolvedMapping(out, {m: descriptions.get(m, m) for ms in out.values() for m in ms})


def read_hierarchy(path: str | Path) -> dict[str, set[str]]:
    """Children (``Subcategory`` and ``Part``) per MID from ``bbox_labels_600_hierarchy.json``."""
    path = check_file(path, "hierarchy file", "download bbox_labels_600_hierarchy.json or leave out --hierarchy")
    try:
        root = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"hierarchy is not valid JSON ({exc})", path=path, fix="re-download it") from exc
    children: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, Mapping) or "LabelName" not in node:
            raise DataError(f"unexpected hierarchy node {str(node)[:80]}", path=path,
                            fix="pass OpenImages' bbox_labels_600_hierarchy.json (nodes with LabelName)")
        kids = list(node.get("Subcategory", [])) + list(node.get("Part", []))
        children.setdefault(node["LabelName"], set()).update(k.get("LabelName") for k in kids if isinstance(k, Mapping))
        for k in kids:
            walk(k)

    walk(root)
    return children


def descendants(mids: Iterable[str], children: Mapping[str, set[str]]) -> set[str]:
    """All MIDs reachable from ``mids`` (not including them unless reachable), cycle-safe."""
    seen: set[str] = set()
    stack = [c for m in mids for c in children.get(m, ())]
    while stack:
        m = stack.pop()
        if m in seen:
            continue
        seen.add(m)
        stack.extend(children.get(m, ()))
    return seen
