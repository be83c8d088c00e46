"""The `Ledger` class: a run's SQLite file, written stage by stage, read by every part of rsi."""
from __future__ import annotations

import array
import functools
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rsi.crashpoints import crash_point
from rsi.errors import LedgerError
from rsi.ledger.accepted import EXAMPLES, ONE, ROWS, ExampleRows, example
from rsi.ledger.schema import now, prepare
from rsi.ledger.writer import StageWriter
from rsi.records import EvalResult, Example, GateDecision, Label, Problem, Proposal, Reading, Sample


def _guarded(method):
    """Turn any sqlite3 error inside a public method into a LedgerError naming the file."""

    @functools.wraps(method)
    def wrapper(self: Ledger, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e

    return wrapper


class Ledger:
    """An open ledger file. Use as a context manager, or call `close()`."""

    def __init__(self, path: Path, create: bool = True, readonly: bool = False) -> None:
        """Open (or, with `create`, make) the ledger at `path`. `readonly` opens it for reading only
        (status, report, export): nothing is written, and a run on a read-only file system (an
        archive, a shared mount) can still be read."""
        self.path = Path(path)
        self._writer: StageWriter | None = None
        exists = self.path.exists()
        if not exists and (not create or readonly):
            raise LedgerError(f"{self.path}: no ledger file here (not creating one); "
                              "check the run directory name")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # A URI with mode=rw never creates the file; isolation_level=None: we issue BEGIN ourselves.
        base = self.path.resolve().as_uri()
        if readonly:  # WAL needs its -shm file; where that cannot be made, read the file as it is
            uris = [base + "?mode=ro", base + "?mode=ro&immutable=1"]
        else:
            uris = [base + ("?mode=rw" if exists else "?mode=rwc")]
        for i, uri in enumerate(uris):
            con = None
            try:
                con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
                prepare(con, self.path, create and not readonly, readonly)
            except BaseException as e:
                if con is not None:
                    con.close()
                if not isinstance(e, sqlite3.DatabaseError):
                    raise
                if i + 1 == len(uris):
                    raise self._error(e) from e
                continue
            self._con = con
            break

    def _error(self, e: sqlite3.DatabaseError) -> LedgerError:
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return LedgerError(f"{self.path}: ledger is locked by another process ({e}); "
                               "is another `rsi` writing to this run?")
        if "readonly" in str(e) or not os.access(self.path.parent, os.W_OK):
            return LedgerError(f"{self.path}: the run directory is not writable ({e}); this command changes the "
                               "run, so it needs write access (status, report --out and export --out only read it)")
        return LedgerError(f"{self.path}: not a readable rsi ledger ({e})")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """Inside a stage: part of its transaction. Outside: a transaction of its own."""
        if self._writer is not None:
            yield
            return
        self._con.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    @contextmanager
    def stage(self, cycle: int, stage: str) -> Iterator[StageWriter]:
        """One transaction holding a stage's rows and its row in `stages`; rolled back if the body raises."""
        if self._writer is not None:
            raise LedgerError(f"{self.path}: stage {self._writer.stage!r} of cycle "
                              f"{self._writer.cycle} is still open; stages do not nest")
        if self.is_done(cycle, stage):
            raise LedgerError(f"{self.path}: stage {stage!r} of cycle {cycle} is already "
                              "completed; resume at the next stage instead of redoing it")
        writer = StageWriter(self, int(cycle), stage)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            self._con.execute("BEGIN")
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        self._writer = writer
        try:
            yield writer
            v = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                 "generated_tokens": 0, "train_sequences": 0, "train_tokens": 0, **writer.values}
            self._con.execute(
                "INSERT INTO stages VALUES (?,?,?,?,?,?,?,?,?)",
                (writer.cycle, stage, now(), float(v["wall_s"]), float(v["cpu_s"]),
                 int(v["generated_tokens"]), int(v["train_sequences"]), int(v["train_tokens"]),
                 json.dumps(writer.extra, sort_keys=True)))
            crash_point(writer.cycle, stage, "commit")  # fault injection: every row written, nothing committed
            self._con.execute("COMMIT")
        except BaseException as e:
            self._writer = None
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
            if isinstance(e, sqlite3.DatabaseError):
                raise self._error(e) from e
            raise
        self._writer = None

    # ------------------------------------------------------------------ writes

    @_guarded
    def set_run(self, name: str, config: dict) -> None:
        """Record the run's name and frozen config once; the same name again is a no-op."""
        row = self._con.execute("SELECT name FROM run").fetchone()
        if row is not None:
            if row[0] != name:
                raise LedgerError(f"{self.path}: this ledger belongs to run {row[0]!r}, "
                                  f"not {name!r}; use another run directory")
            return
        with self._tx():
            self._con.execute("INSERT INTO run VALUES (1, ?, ?, ?)",
                              (name, json.dumps(config, sort_keys=True, default=str), now()))

    def _insert(self, sql: str, rows: list[tuple], duplicate) -> None:
        """Insert `rows` in one transaction; a row whose key is
        already there raises LedgerError with `duplicate(i)`, i the row's position. Text that is
        not valid UTF-8 (a lone surrogate a model or a program wrote) is stored with "?" in its place."""
        with self._tx():
            for i, row in enumerate(rows):
                try:
                    self._con.execute(sql, tuple(map(_storable, row)))
                except sqlite3.IntegrityError:
                    raise LedgerError(f"{self.path}: {duplicate(i)}") from None

    @_guarded
    def add_problems(self, cycle: int, problems: list[Problem]) -> None:
        self._insert("INSERT INTO problems VALUES (?,?,?,?,?,?,?,?,?)",
                     [(p.id, int(cycle), p.task, p.difficulty, p.split, p.seed, p.prompt, p.answer, p.source)
                      for p in problems],
                     lambda i: f"problem {problems[i].id!r} is already in the ledger; problem ids are never reused")

    @_guarded
    def withdraw_problems(self, ids: list[str], cycle: int) -> None:
        """Delete human problems of `cycle` that no stage has used (the one deletion a ledger allows:
        `rsi withdraw`), recording a `withdraw` event, in one transaction."""
        if self.is_done(cycle, "generate"):
            raise LedgerError(f"{self.path}: cycle {cycle}'s problems were answered already; they cannot be withdrawn")
        with self._tx():
            for pid in ids:
                self._con.execute("DELETE FROM problems WHERE id = ? AND cycle = ? AND source = 'human'",
                                  (pid, int(cycle)))
            self._con.execute("INSERT INTO events VALUES (?,?,?,?)",
                              (now(), int(cycle), "withdraw", json.dumps({"problems": ids})))

    @_guarded
    def add_samples(self, cycle: int, model: str, samples: list[Sample]) -> None:
        self._insert("INSERT INTO samples VALUES (?,?,?,?,?,?)",
                     [(int(cycle), model, s.problem_id, s.index, s.completion, s.n_tokens) for s in samples],
                     lambda i: f"sample {samples[i].index} of problem {samples[i].problem_id!r} is already in "
                               f"cycle {cycle}")

    @_guarded
    def add_labels(self, cycle: int, labels: list[Label]) -> None:
        self._insert("INSERT INTO labels VALUES (?,?,?,?,?,?,?,?)",
                     [(int(cycle), lb.problem_id, lb.sample_index, lb.answer, int(lb.kept), lb.reason,
                       float(lb.agreement), None if lb.audit_correct is None else int(lb.audit_correct))
                      for lb in labels],
                     lambda i: f"sample {labels[i].sample_index} of problem {labels[i].problem_id!r} is already "
                               f"labelled in cycle {cycle}")

    @_guarded
    def add_proposals(self, cycle: int, proposals: list[Proposal]) -> None:
        if proposals:
            self._insert("INSERT INTO proposals VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         [(int(cycle), q.proposer, q.difficulty, q.index, q.prompt, q.completion, q.n_tokens,
                           int(q.finished), int(q.valid), q.reason, json.dumps(list(q.problem_ids)))
                          for q in proposals],
                         lambda i: f"proposal {proposals[i].index} at difficulty {proposals[i].difficulty} is "
                                   f"already in cycle {cycle}")

    @_guarded
    def add_eval(self, cycle: int, model: str, results: list[EvalResult]) -> None:
        """One row per difficulty, stored under `model` (the results' own `.model` is not read)."""
        self._insert("INSERT INTO evals VALUES (?,?,?,?,?,?,?,?,?)",
                     [(int(cycle), model, r.difficulty, r.n, r.correct, r.accuracy, r.lo, r.hi,
                       "".join("1" if ok else "0" for ok in r.per_problem)) for r in results],
                     lambda i: f"{model!r} already has an evaluation at difficulty {results[i].difficulty} in "
                               f"cycle {cycle}")
        answers = [(int(cycle), model, r.difficulty, pid, text, int(ok))
                   for r in results if r.answers for (pid, text), ok in zip(r.answers, r.per_problem, strict=True)]
        if answers:
            self._insert("INSERT INTO eval_answers VALUES (?,?,?,?,?,?)", answers,
                         lambda i: f"{model!r} already has an answer to {answers[i][3]!r} in cycle {cycle}")

    @_guarded
    def add_gate(self, cycle: int, champion: str, candidate: str, decision: GateDecision) -> None:
        self._insert("INSERT INTO gates VALUES (?,?,?,?,?,?,?,?)",
                     [(int(cycle), champion, candidate, int(decision.promote), decision.reason, decision.gain,
                       decision.gain_lo, decision.worst_regression)],
                     lambda i: f"cycle {cycle} already has a gate decision")

    @_guarded
    def add_readings(self, cycle: int, readings: list[Reading]) -> None:
        """Integrity monitors' readings (`rsi.monitors`), one per monitor and cycle."""
        if readings:
            self._insert("INSERT INTO monitors VALUES (?,?,?,?,?)",
                         [(int(cycle), r.monitor, json.dumps(r.value, sort_keys=True, default=str), int(r.alert),
                           r.message) for r in readings],
                         lambda i: f"cycle {cycle} already has a {readings[i].monitor!r} reading")

    @_guarded
    def add_metrics(self, cycle: int, stage: str, metrics: dict) -> None:
        with self._tx():
            self._con.execute("INSERT INTO metrics VALUES (?,?,?)",
                              (int(cycle), stage, json.dumps(metrics, sort_keys=True, default=str)))

    @_guarded
    def add_event(self, cycle: int, kind: str, detail: dict) -> None:
        """A run event outside the stages (e.g. kind "stop" with its reason), in its own transaction."""
        with self._tx():
            self._con.execute("INSERT INTO events VALUES (?,?,?,?)",
                              (now(), int(cycle), kind, json.dumps(detail, sort_keys=True, default=str)))

    # ------------------------------------------------------------------ queries

    def _has_table(self, name: str) -> bool:
        """Whether an additive table (created with its first row) exists yet."""
        return self._con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def _rows(self, sql: str, args: tuple = ()) -> list[dict]:
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
        rows = self._con.execute(EXAMPLES, (upto_cycle, upto_cycle))
        return [(cycle, example(*rest)) for cycle, *rest in rows]

    @_guarded
    def accepted_rows(self, upto_cycle: int | None = None) -> ExampleRows:
        """The same examples as `accepted`, each read from the ledger when it is indexed."""
        cycles, rowids = array.array("q"), array.array("q")
        for cycle, rowid in self._con.execute(ROWS, (upto_cycle, upto_cycle)):
            cycles.append(cycle)
            rowids.append(rowid)
        return ExampleRows(self._accepted_at, cycles, rowids)

    @_guarded
    def _accepted_at(self, rowid: int) -> Example:
        return example(*self._con.execute(ONE, (rowid,)).fetchone())

    def accepted_examples(self, upto_cycle: int | None = None) -> list[Example]:
        """The examples of `accepted`, without their cycles."""
        return [ex for _, ex in self.accepted(upto_cycle)]

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

    def resume_overrides(self) -> list[str]:
        """Every `--set` a resume raised the run's limits with, oldest first (re-applied on resume)."""
        return [o for e in self.events("resume") for o in e["detail"]["overrides"]]

    @_guarded
    def totals(self) -> dict[str, float]:
        """The run's cost so far, summed over completed stages: wall_s, cpu_s, generated_tokens, ..."""
        keys = ("wall_s", "cpu_s", "generated_tokens", "train_sequences", "train_tokens")
        row = self._con.execute(f"SELECT {', '.join(f'COALESCE(SUM({k}), 0)' for k in keys)} FROM stages").fetchone()
        return dict(zip(keys, row, strict=True))


def _storable(value):
    """`value`, or for text, the same text as valid UTF-8 (each lone surrogate becomes "?")."""
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value
