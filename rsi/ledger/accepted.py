"""The run's verified data: every kept answer, deduplicated by (prompt, answer), the first kept.

A long run accumulates it without bound (160,000 examples after 200 `quick` cycles), and the
train stage draws a few thousand of them a cycle. `ExampleRows` therefore holds only the label
row ids, in order (8 bytes an example), and reads an example from the ledger when it is drawn:
building every example as an object took 1.4 s and ~118 MB a cycle at that size.

Order: by the cycle that first kept it, then problem id, then sample index. Origin is "human"
or "seed" when the problem's source says so, else "self". Labels whose problem is not in the
ledger are skipped. People's labels (`human_labels`) join from the cycle they were recorded for:
an answer a person gave is an example of origin "human", and a kept label a person marked wrong is
no example from then on.
"""

from __future__ import annotations

import array
import bisect
from collections.abc import Callable, Sequence

from rsi.records import Example

# Every kept label, less those a person marked wrong (`human_labels.correct = 0`), and every answer a person
# gave (`correct = 1`, rowid negated, sample index -1, source 'human'); :upto limits all to a cycle.
_MODEL_KEPT = """
    SELECT l.rowid AS rid, l.cycle AS c, p.id AS pid, l.sample_index AS si, p.prompt, l.answer, p.difficulty, p.source
    FROM labels l JOIN problems p ON p.id = l.problem_id WHERE l.kept = 1 AND (:upto IS NULL OR l.cycle <= :upto)"""
_NOT_MARKED_WRONG = """
    AND NOT EXISTS (SELECT 1 FROM human_labels h WHERE h.problem_id = l.problem_id AND h.answer = l.answer
                    AND h.correct = 0 AND (:upto IS NULL OR h.cycle <= :upto))"""
_PEOPLE_GAVE = """
    UNION ALL SELECT -h.rowid, h.cycle, p.id, -1, p.prompt, h.answer, p.difficulty, 'human'
    FROM human_labels h JOIN problems p ON p.id = h.problem_id
    WHERE h.correct = 1 AND (:upto IS NULL OR h.cycle <= :upto)"""


def _first_kept(people: bool) -> str:
    kept = _MODEL_KEPT + (_NOT_MARKED_WRONG + _PEOPLE_GAVE if people else "")
    return f"""SELECT *, row_number() OVER (PARTITION BY prompt, answer ORDER BY c, pid, si) AS nth FROM ({kept})"""


def rows_sql(people: bool) -> str:
    """(cycle first kept, row id: a label's, or minus a person's label's) per accepted example."""
    return f"SELECT c, rid FROM ({_first_kept(people)}) WHERE nth = 1 ORDER BY c, pid, si"


def examples_sql(people: bool) -> str:
    return (f"SELECT c, prompt, answer, difficulty, source FROM ({_first_kept(people)}) "
            "WHERE nth = 1 ORDER BY c, pid, si")


def provenance_sql(people: bool) -> str:
    """The same examples with where each came from: its label's reason and agreement (a person's: who and
    why, agreement 1), the sample's model and text."""
    human = "LEFT JOIN human_labels h ON f.rid < 0 AND h.rowid = -f.rid" if people else ""
    reason = "COALESCE(l.reason, 'labelled by ' || h.person || ': ' || h.why)" if people else "l.reason"
    return f"""
    SELECT f.c AS cycle, f.pid AS problem_id, f.si AS sample_index, f.prompt, f.answer, f.difficulty, f.source,
           {reason} AS reason, COALESCE(l.agreement, 1.0)
           AS agreement, s.model, s.completion AS sample
    FROM ({_first_kept(people)}) f LEFT JOIN labels l ON f.rid > 0 AND l.rowid = f.rid {human}
    LEFT JOIN samples s ON s.problem_id = f.pid AND s.sample_index = f.si AND s.cycle = f.c
    WHERE f.nth = 1 ORDER BY f.c, f.pid, f.si"""


ONE = ("SELECT p.prompt, l.answer, p.difficulty, p.source FROM labels l JOIN problems p ON p.id = l.problem_id "
       "WHERE l.rowid = ?")
ONE_HUMAN = ("SELECT p.prompt, h.answer, p.difficulty, 'human' FROM human_labels h JOIN problems p "
             "ON p.id = h.problem_id WHERE h.rowid = ?")


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
