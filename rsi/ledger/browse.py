"""The ledger's reads for people browsing a run (the console, `rsi label`): a page of samples with
their labels, the label queue, people's verdicts on kept labels. Each reads one page through the
tables' indexes, so a ledger of a million samples answers as fast as a small one.

`Browse` is mixed into `rsi.ledger.queries.Queries`; it needs the open connection `_con`.
"""
from __future__ import annotations

from dataclasses import dataclass

_QUEUE = """
    SELECT q.problem_id, q.cycle, p.prompt, p.difficulty, q.agreement, q.samples FROM (
        SELECT problem_id, cycle, MAX(agreement) AS agreement, COUNT(*) AS samples FROM labels l
        WHERE cycle = :cycle AND reason LIKE 'no majority%' {unlabelled}
        GROUP BY problem_id ORDER BY agreement DESC, problem_id LIMIT :limit OFFSET :offset) q
    JOIN problems p ON p.id = q.problem_id ORDER BY q.agreement DESC, q.problem_id"""
_UNLABELLED = "AND NOT EXISTS (SELECT 1 FROM human_labels h WHERE h.problem_id = l.problem_id)"
# `+cycle`: look the problem's few rows up by its id, not the cycle's tens of thousands by cycle
_VOTES = ("SELECT answer, COUNT(*) AS n FROM labels WHERE problem_id = ? AND +cycle = ? "
          "GROUP BY answer ORDER BY n DESC, answer")
_SAMPLES = """
    SELECT s.rowid AS rid, s.cycle, s.model, s.problem_id, s.sample_index, s.completion, s.n_tokens,
           p.prompt, p.answer AS reference, p.difficulty, p.source, p.split,
           l.answer, l.kept, l.reason, l.agreement, l.audit_correct
    FROM samples s JOIN problems p ON p.id = s.problem_id
    LEFT JOIN labels l ON l.problem_id = s.problem_id AND l.sample_index = s.sample_index AND l.cycle = s.cycle
    WHERE s.rowid > :after AND s.rowid <= :upto {where} ORDER BY s.rowid LIMIT :limit"""
SCAN = 100_000  # sample rows one page looks through at most: a filter that matches little pages on, never stalls


@dataclass(frozen=True)
class SampleFilter:
    """Which samples a page shows; None: any."""

    cycle: int | None = None
    difficulty: int | None = None
    source: str | None = None  # the problem's: seed, model, human
    kept: bool | None = None
    reason: str | None = None  # the label's reason starts with this

    def sql(self) -> tuple[str, dict]:
        where, args = [], {}
        if self.cycle is not None:
            where.append("s.cycle = :cycle")
            args["cycle"] = self.cycle
        if self.difficulty is not None:
            where.append("p.difficulty = :difficulty")
            args["difficulty"] = self.difficulty
        if self.source is not None:
            where.append("p.source = :source")
            args["source"] = self.source
        if self.kept is not None:
            where.append("l.kept = :kept")
            args["kept"] = int(self.kept)
        if self.reason:
            where.append("l.reason LIKE :reason ESCAPE '\\'")
            args["reason"] = self.reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return "".join(f" AND {w}" for w in where), args


class Browse:
    def sample_page(self, which: SampleFilter, after: int = 0, limit: int = 50) -> tuple[list[dict], int | None]:
        """Up to `limit` samples matching `which` after the sample row id `after`, each with its problem and
        label, and where the next page starts (None: at the end). Keyset paging, looking through at most
        `SCAN` rows a page, so a filter that matches few rows gives short pages rather than a slow one."""
        where, args = which.sql()
        last = self._con.execute("SELECT MAX(rowid) FROM samples").fetchone()[0] or 0
        if which.cycle is not None:  # a cycle's samples are written together: start at its first
            first = self._con.execute("SELECT MIN(rowid) FROM samples WHERE cycle = ?", (which.cycle,)).fetchone()[0]
            after = max(after, (first or last + 1) - 1)
        upto = after + SCAN
        rows = self._rows(_SAMPLES.format(where=where), {**args, "after": after, "upto": upto, "limit": limit})
        for r in rows:
            for k in ("kept", "audit_correct"):
                r[k] = None if r[k] is None else bool(r[k])
        following = rows[-1]["rid"] if len(rows) == limit else (upto if upto < last else None)
        return rows, following

    def label_queue(self, cycle: int, limit: int = 50, offset: int = 0) -> list[dict]:
        """`cycle`'s problems that the vote left unlabelled (split, or below the threshold) and no person
        has labelled, the closest votes first; each with its samples' answers and how many gave each."""
        unlabelled = _UNLABELLED if self._has_table("human_labels") else ""
        rows = self._rows(_QUEUE.format(unlabelled=unlabelled), {"cycle": cycle, "limit": limit, "offset": offset})
        for r in rows:
            r["votes"] = self._rows(_VOTES, (r["problem_id"], cycle))
        return rows

    def problem_row(self, problem_id: str) -> dict | None:
        """The problem's row (id, cycle, task, difficulty, split, seed, prompt, answer, source)."""
        rows = self._rows("SELECT * FROM problems WHERE id = ?", (problem_id,))
        return rows[0] if rows else None

    def kept_answers(self, problem_id: str, before_cycle: int | None = None) -> set[str]:
        """The answers labelers kept for the problem (in cycles before `before_cycle`)."""
        return {a for (a,) in self._con.execute(
            "SELECT DISTINCT answer FROM labels WHERE problem_id = ? AND kept = 1 AND (? IS NULL OR cycle < ?)",
            (problem_id, before_cycle, before_cycle))}

    def kept_label_ids(self, cycle: int) -> list[int]:
        """The row ids of `cycle`'s kept labels, in the order they were written."""
        return [r for (r,) in self._con.execute("SELECT rowid FROM labels WHERE cycle = ? AND kept = 1 ORDER BY rowid",
                                                (int(cycle),))]

    def labels_with_problems(self, ids: list[int]) -> list[dict]:
        """The labels with these row ids, in that order, each with its problem's prompt and source."""
        found = {r["rid"]: r for r in self._rows(
            "SELECT l.rowid AS rid, l.problem_id, l.answer, p.prompt, p.source FROM labels l "
            f"JOIN problems p ON p.id = l.problem_id WHERE l.rowid IN ({','.join('?' * len(ids))})", tuple(ids))}
        return [found[i] for i in ids if i in found]
