"""The run's verified data: every kept answer, deduplicated by (prompt, answer), the first kept.

A long run accumulates it without bound (160,000 examples after 200 `quick` cycles), and the
train stage draws a few thousand of them a cycle. `ExampleRows` therefore holds only the label
row ids, in order (8 bytes an example), and reads an example from the ledger when it is drawn:
building every example as an object took 1.4 s and ~118 MB a cycle at that size.

Order: by the cycle that first kept it, then problem id, then sample index. Origin is "human"
or "seed" when the problem's source says so, else "self". Labels whose problem is not in the
ledger are skipped.
"""

from __future__ import annotations

import array
import bisect
from collections.abc import Callable, Sequence

from rsi.records import Example

_FIRST_KEPT = """
    SELECT l.rowid AS rid, l.cycle AS c, p.id AS pid, l.sample_index AS si, p.prompt, l.answer, p.difficulty,
           p.source, row_number() OVER (PARTITION BY p.prompt, l.answer
                                        ORDER BY l.cycle, p.id, l.sample_index) AS nth
    FROM labels l JOIN problems p ON p.id = l.problem_id WHERE l.kept = 1 AND (? IS NULL OR l.cycle <= ?)"""
ROWS = f"SELECT c, rid FROM ({_FIRST_KEPT}) WHERE nth = 1 ORDER BY c, pid, si"
EXAMPLES = f"SELECT c, prompt, answer, difficulty, source FROM ({_FIRST_KEPT}) WHERE nth = 1 ORDER BY c, pid, si"
# The same examples with where each came from: its label's reason and agreement, the sample's model and text.
PROVENANCE = f"""
    SELECT f.c AS cycle, f.pid AS problem_id, f.si AS sample_index, f.prompt, f.answer, f.difficulty, f.source,
           l.reason, l.agreement, s.model, s.completion AS sample
    FROM ({_FIRST_KEPT}) f JOIN labels l ON l.rowid = f.rid
    LEFT JOIN samples s ON s.problem_id = f.pid AND s.sample_index = f.si AND s.cycle = f.c
    WHERE f.nth = 1 ORDER BY f.c, f.pid, f.si"""
ONE = ("SELECT p.prompt, l.answer, p.difficulty, p.source FROM labels l JOIN problems p ON p.id = l.problem_id "
       "WHERE l.rowid = ?")


def example(prompt: str, answer: str, difficulty: int, source: str) -> Example:
    return Example(prompt=prompt, answer=answer, difficulty=difficulty,
                   origin=source if source in ("human", "seed") else "self")


class ExampleRows(Sequence[Example]):
    """Accepted examples as a sequence whose items are read from the ledger when indexed."""

    def __init__(self, fetch: Callable[[int], Example], cycles: array.array, rowids: array.array) -> None:
        self._fetch, self.cycles, self._rowids = fetch, cycles, rowids

    def __len__(self) -> int:
        return len(self._rowids)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return ExampleRows(self._fetch, self.cycles[i], self._rowids[i])
        return self._fetch(self._rowids[i])

    def split(self, cycle: int) -> tuple[ExampleRows, ExampleRows]:
        """(first kept before `cycle`, first kept in `cycle` or later)."""
        k = bisect.bisect_left(self.cycles, cycle)
        return self[:k], self[k:]
