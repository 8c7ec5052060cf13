"""How far past a page a ranked read must fetch to see its boundary's ties end.

Runs of one template with the same answers have the same text, so they score
alike: a page boundary usually falls inside a group of equal scores, and the
exact order (newest first within a score, text_candidates.py) needs the whole
group. Each tantivy pass scores every match, whatever its limit, so a first
pass that stops inside the group costs a second whole pass (measured at
100,000 patterns: 2-3 passes a search, 1.3-4.6 ms, against 0.8-2.3 ms for one
pass fetching 2,010 hits).

A namespace's groups have a typical size, so reads learn it: the first pass
fetches what recent reads needed, a little more, and shrinks slowly when
reads need less. Only how many hits are fetched depends on it, never which
results a read returns.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a namespace's first read fetches past its page: the hits of a few tied
# groups of a small store, at the cost of a top-18 (measured at 30,000 patterns).
FIRST_REACH = 120
# The most it grows to: a top-k of ~4,000 converts that many hits to Python
# (about 0.3 ms at 100,000 patterns), still well under a second pass.
MOST_REACH = 4096
_MARGIN = 1.25  # Over the reach a read needed.
_SHRINK = 63 / 64  # Per read needing less: many reads, not one, make it smaller.


@dataclass
class TieReach:
    """The hits a namespace's reads fetch past their page at first."""

    reach: int = FIRST_REACH

    def observe(self, needed: int) -> None:
        """Notes that a read needed `needed` hits past its page to settle it."""
        wanted = min(MOST_REACH, round(needed * _MARGIN))
        self.reach = max(FIRST_REACH, wanted, round(self.reach * _SHRINK))
