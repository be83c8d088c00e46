"""The ledger's queries: every read of a run's SQLite file, as typed records or row dicts.

`Queries` is the read half of `rsi.ledger.Ledger` (which adds the writes); it needs the open
connection `_con` and the file's `_error` for `_guarded`.
"""
from __future__ import annotations

import array
import functools
import json
import sqlite3

from rsi.ledger.accepted import ONE, ONE_HUMAN, ExampleRows, example, examples_sql, provenance_sql, rows_sql
from rsi.ledger.browse import Browse
from rsi.records import EvalResult, Example, Label, Problem, Proposal, Sample


def _guarded(method):
    """Turn any sqlite3 error inside a public method into a LedgerError naming the file."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e

    return wrapper


class Queries(Browse):
    def _has_table(self, name: str) -> bool:
        """Whether an additive table (created with its first row) exists yet."""
        return self._con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def _rows(self, sql: str, args: tuple | dict = ()) -> list[dict]:
        cur = self._con.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @_guarded
    def run_info(self) -> dict | None:
        rows = self._rows("SELECT name, config_json, created_at FROM run")
        if not rows:
            return None
        r = rows[0]
        return {"name": r["name"], "config": json.loads(r["config_json"]), "created_at": r["created_at"]}

    @_guarded
    def completed_stages(self) -> list[tuple[int, str]]:
        """(cycle, stage) pairs in the order they were completed."""
        return [(c, s) for c, s in self._con.execute("SELECT cycle, stage FROM stages ORDER BY rowid")]

    @_guarded
    def is_done(self, cycle: int, stage: str) -> bool:
        return self._con.execute("SELECT 1 FROM stages WHERE cycle=? AND stage=?",
                                 (int(cycle), stage)).fetchone() is not None

    @_guarded
    def problems(self, cycle: int | None = None, split: str | None = None) -> list[Problem]:
        rows = self._rows(
            "SELECT task, difficulty, split, seed, prompt, answer, source FROM problems "
            "WHERE (? IS NULL OR cycle = ?) AND (? IS NULL OR split = ?) ORDER BY cycle, rowid",
            (cycle, cycle, split, split))
        return [Problem(**r) for r in rows]

    @_guarded
    def samples(self, cycle: int) -> list[Sample]:
        return [Sample(problem_id=p, index=i, completion=c, n_tokens=n, model=m) for p, i, c, n, m in self._con.execute(
            "SELECT problem_id, sample_index, completion, n_tokens, model FROM samples WHERE cycle=? "
            "ORDER BY rowid", (int(cycle),))]

    @_guarded
    def labels(self, cycle: int) -> list[Label]:
        rows = self._rows("SELECT problem_id, sample_index, answer, kept, reason, agreement, "
                          "audit_correct FROM labels WHERE cycle=? ORDER BY rowid", (int(cycle),))
        for r in rows:
            r["kept"] = bool(r["kept"])
            r["audit_correct"] = None if r["audit_correct"] is None else bool(r["audit_correct"])
        return [Label(**r) for r in rows]

    @_guarded
    def proposals(self, cycle: int | None = None) -> list[Proposal]:
        if not self._has_table("proposals"):
            return []
        rows = self._con.execute(
            "SELECT proposer, difficulty, idx, prompt, completion, n_tokens, finished, valid, reason, problem_ids "
            "FROM proposals WHERE (? IS NULL OR cycle = ?) ORDER BY rowid", (cycle, cycle))
        return [Proposal(who, d, i, p, c, n, bool(f), bool(v), r, tuple(json.loads(ids)))
                for who, d, i, p, c, n, f, v, r, ids in rows]

    @_guarded
    def accepted(self, upto_cycle: int | None = None) -> list[tuple[int, Example]]:
        """(cycle first kept, example) for every kept answer up to `upto_cycle` (`rsi.ledger.accepted`)."""
        rows = self._con.execute(examples_sql(self._has_table("human_labels")), {"upto": upto_cycle})
        return [(cycle, example(*rest)) for cycle, *rest in rows]

    @_guarded
    def accepted_rows(self, upto_cycle: int | None = None) -> ExampleRows:
        """The same examples as `accepted`, each read from the ledger when it is indexed."""
        cycles, rowids = array.array("q"), array.array("q")
        for cycle, rowid in self._con.execute(rows_sql(self._has_table("human_labels")), {"upto": upto_cycle}):
            cycles.append(cycle)
            rowids.append(rowid)
        return ExampleRows(self._accepted_at, cycles, rowids)

    @_guarded
    def _accepted_at(self, rowid: int) -> Example:
        return example(*self._con.execute(ONE if rowid > 0 else ONE_HUMAN, (abs(rowid),)).fetchone())

    @_guarded
    def provenance(self) -> list[dict]:
        """The examples of `accepted` as rows with where each came from (`rsi.ledger.accepted.PROVENANCE`)."""
        return self._rows(provenance_sql(self._has_table("human_labels")), {"upto": None})

    def accepted_examples(self, upto_cycle: int | None = None) -> list[Example]:
        """The examples of `accepted`, without their cycles."""
        return [ex for _, ex in self.accepted(upto_cycle)]

    @_guarded
    def human_labels(self, cycle: int | None = None) -> list[dict]:
        """People's labels (at, cycle, problem_id, answer, correct, person, why), oldest first; `cycle`: those
        that joined that cycle."""
        if not self._has_table("human_labels"):
            return []
        rows = self._rows("SELECT * FROM human_labels WHERE (? IS NULL OR cycle = ?) ORDER BY rowid", (cycle, cycle))
        for r in rows:
            r["correct"] = bool(r["correct"])
        return rows

    @_guarded
    def evals(self, model: str | None = None) -> list[dict]:
        """Eval rows (cycle, model, difficulty, n, correct, accuracy, lo, hi, per_problem)."""
        rows = self._rows("SELECT * FROM evals WHERE (? IS NULL OR model = ?) ORDER BY rowid",
                          (model, model))
        for r in rows:
            r["per_problem"] = tuple(ch == "1" for ch in r["per_problem"])
        return rows

    @_guarded
    def eval_results(self, cycle: int, model: str) -> list[EvalResult]:
        """`model`'s evaluation in `cycle`, ordered by difficulty (empty if there is none)."""
        rows = self._rows("SELECT difficulty, n, correct, lo, hi, per_problem FROM evals "
                          "WHERE cycle=? AND model=? ORDER BY difficulty", (int(cycle), model))
        return [EvalResult(model=model, difficulty=r["difficulty"], n=r["n"], correct=r["correct"],
                           lo=r["lo"], hi=r["hi"],
                           per_problem=tuple(ch == "1" for ch in r["per_problem"])) for r in rows]

    @_guarded
    def heldout(self) -> list[dict]:
        """The held-out problems evaluated on: problem_id, task, difficulty, prompt, answer (none in a run
        recorded before they were kept)."""
        if not self._has_table("heldout"):
            return []
        return self._rows("SELECT * FROM heldout ORDER BY difficulty, rowid", ())

    def eval_answers(self, cycle: int | None = None, model: str | None = None) -> list[dict]:
        """Every scored held-out answer: cycle, model, difficulty, problem_id, completion, correct."""
        if not self._has_table("eval_answers"):
            return []
        rows = self._rows("SELECT * FROM eval_answers WHERE (? IS NULL OR cycle = ?) AND (? IS NULL OR model = ?) "
                          "ORDER BY rowid", (cycle, cycle, model, model))
        for r in rows:
            r["correct"] = bool(r["correct"])
        return rows

    @_guarded
    def gates(self) -> list[dict]:
        """Gate rows (cycle, champion, candidate, promote, reason, gain, gain_lo, worst_regression)."""
        rows = self._rows("SELECT * FROM gates ORDER BY cycle")
        for r in rows:
            r["promote"] = bool(r["promote"])
        return rows

    @_guarded
    def costs(self) -> list[dict]:
        """One row per completed stage, in completion order; `extra` holds cost()'s extra keys."""
        rows = self._rows("SELECT * FROM stages ORDER BY rowid")
        for r in rows:
            r["extra"] = json.loads(r.pop("extra_json"))
        return rows

    @_guarded
    def metrics(self) -> list[dict]:
        """Rows of {cycle, stage, metrics} in insertion order."""
        return [{"cycle": c, "stage": s, "metrics": json.loads(m)} for c, s, m in
                self._con.execute("SELECT cycle, stage, metrics_json FROM metrics ORDER BY rowid")]

    @_guarded
    def events(self, kind: str | None = None) -> list[dict]:
        """Rows of {at, cycle, kind, detail} in the order they happened (none before the first event)."""
        if not self._has_table("events"):
            return []
        return [{"at": a, "cycle": c, "kind": k, "detail": json.loads(d)} for a, c, k, d in self._con.execute(
            "SELECT at, cycle, kind, detail_json FROM events WHERE (? IS NULL OR kind = ?) ORDER BY rowid",
            (kind, kind))]

    @_guarded
    def readings(self, monitor: str | None = None) -> list[dict]:
        """Monitor readings in cycle order: cycle, monitor, value, alert, message."""
        if not self._has_table("monitors"):
            return []
        rows = self._rows("SELECT cycle, monitor, value_json, alert, message FROM monitors "
                          "WHERE ? IS NULL OR monitor = ? ORDER BY cycle, rowid", (monitor, monitor))
        return [{"cycle": r["cycle"], "monitor": r["monitor"], "value": json.loads(r["value_json"]),
                 "alert": bool(r["alert"]), "message": r["message"]} for r in rows]

    def recipe_overrides(self, upto_cycle: int | None = None) -> list[str]:
        """Every recipe change (`recipe` events) for cycles up to `upto_cycle`, oldest first."""
        return [o for e in self.events("recipe") if upto_cycle is None or e["cycle"] <= upto_cycle
                for o in e["detail"]["overrides"]]

    def resume_overrides(self) -> list[str]:
        """Every `--set` a resume raised the run's limits with, oldest first (re-applied on resume)."""
        return [o for e in self.events("resume") for o in e["detail"]["overrides"]]

    @_guarded
    def totals(self) -> dict[str, float]:
        """The run's cost so far, summed over completed stages: wall_s, cpu_s, generated_tokens, ..."""
        keys = ("wall_s", "cpu_s", "generated_tokens", "train_sequences", "train_tokens")
        row = self._con.execute(f"SELECT {', '.join(f'COALESCE(SUM({k}), 0)' for k in keys)} FROM stages").fetchone()
        return dict(zip(keys, row, strict=True))
