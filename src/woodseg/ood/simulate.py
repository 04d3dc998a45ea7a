"""A simulated reviewer: the manual pruning of Sec. 3.1 done by a truth oracle, through the real store.

The demo and the cost measurements need the review without a person. :func:`simulate_review` walks each
class's queue in the store's review order (the same queue the web page shows), asks the oracle whether
the image shows a target object, and records keep/reject through :meth:`ReviewStore.decide` under the
reviewer name "simulated", until ``n`` are kept or the queue runs out. The web app's rules therefore
hold (e.g. an image rejected for one class is not shown again for another).

:func:`effort_for_n` is the same count on a plain sequence, for what-if comparisons of orderings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from woodseg.ood.candidates import Candidate
from woodseg.ood.rank import Ranked
from woodseg.ood.review.store import ELSEWHERE, ReviewSettings, ReviewStore

IsPositive = Callable[[str, str], bool]
SIMULATED = "simulated"


@dataclass
class ReviewOutcome:
    """What reviewing one class cost: looks, keeps, rejects, r and the paper's expected cost n / (1 - r)."""

    class_name: str
    target_n: int
    reviewed: int
    kept: int
    rejected: int
    skipped_elsewhere: int
    r: float
    cost: float
    reached: bool

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _outcome(name: str, n: int, reviewed: int, kept: int, rejected: int, elsewhere: int) -> ReviewOutcome:
    r = rejected / reviewed if reviewed else 0.0
    cost = math.inf if r >= 1 else n / (1 - r)
    return ReviewOutcome(name, n, reviewed, kept, rejected, elsewhere, r, cost, kept >= n)


def simulate_review(store: ReviewStore, is_positive: IsPositive, *, target_n: int | None = None,
                    reviewer: str = SIMULATED, classes: Sequence[str] | None = None) -> dict[str, ReviewOutcome]:
    """Review every class (in class order) until ``target_n`` kept (default: the store's target) or exhausted.

    ``is_positive(entry, class_name)`` is True when the image shows a target object (then it is rejected).
    ``entry`` is the pool entry (the OodSet id). Decisions already in the store count and are not redone.
    Each class's queue is read once, when its turn comes, so rejections made for earlier classes apply.
    """
    n = target_n if target_n is not None else store.settings.target_n
    out = {}
    for name in classes if classes is not None else store.class_names():
        reviewed = kept = rejected = elsewhere = 0
        for s in store.states(name, include_hidden=False):
            if kept >= n:
                break
            if s.state == "keep":
                kept += 1
                continue
            if s.state == ELSEWHERE:
                elsewhere += 1
                continue
            if s.state == "reject":  # decided before this run
                continue
            decision = "reject" if is_positive(s.entry, name) else "keep"
            store.decide(s.id, decision, reviewer, base_seq=s.seq)
            reviewed += 1
            kept += decision == "keep"
            rejected += decision == "reject"
        out[name] = _outcome(name, n, reviewed, kept, rejected, elsewhere)
    return out


def simulate_from_candidates(candidates: dict[str, list[Candidate]], is_positive: IsPositive, db_path: str | Path, *,
                             root: str | Path, target_n: int, settings: ReviewSettings | None = None,
                             meta: dict[str, Any] | None = None) -> tuple[ReviewStore, dict[str, ReviewOutcome]]:
    """In-process shortcut: a store from :func:`select_candidates` output, then :func:`simulate_review`."""
    names = tuple(candidates)
    m = {"threshold": None, **(meta or {}), "class_names": list(names), "root": str(root),
         "fingerprint": _fingerprint(candidates)}
    store = ReviewStore.create(db_path, Ranked(names, Path(root), candidates, m),
                               settings or ReviewSettings(target_n=target_n))
    return store, simulate_review(store, is_positive, target_n=target_n)


def _fingerprint(candidates: dict[str, list[Candidate]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, cands in candidates.items():
        for c in cands:
            h.update(f"{name}\t{c.entry}\t{c.p:.6f}\n".encode())
    return h.hexdigest()[:16]


def effort_for_n(positives_in_order: Sequence[bool], n: int, class_name: str = "") -> ReviewOutcome:
    """Looks needed to keep ``n`` when candidates come in this order (True = hidden positive, rejected)."""
    reviewed = kept = rejected = 0
    for pos in positives_in_order:
        if kept >= n:
            break
        reviewed += 1
        if pos:
            rejected += 1
        else:
            kept += 1
    return _outcome(class_name, n, reviewed, kept, rejected, 0)
