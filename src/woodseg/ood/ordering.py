"""The order a person reviews a class's candidates in: the paper's p(c) order, or one that uses a flag.

Modes (``flag`` is ``compactness`` or ``stability``, see :mod:`woodseg.ood.flags`):

- ``p``: p(c) descending, the paper's order.
- ``demote``: candidates flagged as likely positives go after all the others (each part by p(c)), so the
  first n kept come from fewer looks: r falls while the kept images are still the high-p(c) ones.
- ``hide``: flagged candidates are left out of the queue altogether (cheapest, loses a few true OoDs).
- ``flagged-first``: flagged candidates first, for the grid page's batch-reject mode (their tiles start
  as "reject": a whole screen of likely positives is rejected with one key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from woodseg.errors import ConfigError
from woodseg.ood.candidates import Candidate
from woodseg.ood.flags import FLAG_NAMES

ORDER_MODES = ("p", "demote", "hide", "flagged-first")


def check_order(mode: str, flag: str | None) -> None:
    if mode not in ORDER_MODES:
        raise ConfigError(f"unknown review order '{mode}'", fix=f"use one of: {', '.join(ORDER_MODES)}")
    if mode != "p" and flag not in FLAG_NAMES:
        raise ConfigError(f"review order '{mode}' needs a flag", fix=f"pass --flag {' or --flag '.join(FLAG_NAMES)}")


def flag_value(cand: Candidate, flag: str | None) -> float:
    """The candidate's evidence for ``flag`` (NaN when not computed or no flag)."""
    if flag is None:
        return math.nan
    if flag not in FLAG_NAMES:
        raise ConfigError(f"unknown flag '{flag}'", fix=f"use one of: {', '.join(FLAG_NAMES)}")
    return float(getattr(cand, flag))


def is_flagged(cand: Candidate, flag: str | None, threshold: float) -> bool:
    """Likely positive: flag evidence >= threshold (never when the evidence is missing)."""
    v = flag_value(cand, flag)
    return not math.isnan(v) and v >= threshold


def order_candidates(cands: Sequence[Candidate], mode: str = "p", flag: str | None = None,
                     threshold: float = 0.5) -> list[Candidate]:
    """Candidates in review order for ``mode`` (see the module docstring); ties keep p(c) then path order."""
    check_order(mode, flag)
    by_p = sorted(cands, key=lambda c: (-c.p, c.entry))
    if mode == "p":
        return by_p
    flagged = [c for c in by_p if is_flagged(c, flag, threshold)]
    plain = [c for c in by_p if not is_flagged(c, flag, threshold)]
    if mode == "demote":
        return plain + flagged
    if mode == "hide":
        return plain
    return flagged + plain
