"""The `Ledger` class: a run's SQLite file, written stage by stage (its reads are `rsi.ledger.queries`)."""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rsi.crashpoints import crash_point
from rsi.errors import LedgerError
from rsi.ledger.queries import Queries, _guarded
from rsi.ledger.schema import now, prepare
from rsi.ledger.writer import StageWriter
from rsi.records import EvalResult, GateDecision, Label, Problem, Proposal, Reading, Sample


class Ledger(Queries):
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
    def add_heldout(self, problems: list[Problem]) -> None:
        """The held-out problems evaluated on; one already recorded (an earlier evaluation's) is kept as it is."""
        with self._tx():
            self._con.executemany("INSERT OR IGNORE INTO heldout VALUES (?,?,?,?,?)",
                                  [tuple(map(_storable, (p.id, p.task, p.difficulty, p.prompt, p.answer)))
                                   for p in problems])

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
    def add_human_label(self, problem_id: str, answer: str, correct: bool, person: str, why: str) -> int:
        """A person's label (`rsi.run.human_labels`): `answer` is `problem_id`'s right answer (`correct`) or
        a kept label's wrong one. It joins the first cycle whose train stage has not run, read and written
        in one transaction; returns that cycle. The same label for that cycle again is a LedgerError."""
        self._con.execute("BEGIN IMMEDIATE")  # no stage commits between reading the cycle and writing the row
        try:
            trained = {c for (c,) in self._con.execute("SELECT cycle FROM stages WHERE stage = 'train'")}
            cycle = next(c for c in range(1, max(trained, default=0) + 2) if c not in trained)
            self._con.execute("INSERT INTO human_labels VALUES (?,?,?,?,?,?,?)",
                              (now(), cycle, problem_id, _storable(answer), int(correct), _storable(person),
                               _storable(why)))
        except sqlite3.IntegrityError:
            self._con.execute("ROLLBACK")
            raise LedgerError(f"{self.path}: problem {problem_id!r} already has that label ({answer!r}) for cycle "
                              f"{cycle}") from None
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")
        return cycle

    @_guarded
    def add_event(self, cycle: int, kind: str, detail: dict) -> None:
        """A run event outside the stages (e.g. kind "stop" with its reason), in its own transaction."""
        with self._tx():
            self._con.execute("INSERT INTO events VALUES (?,?,?,?)",
                              (now(), int(cycle), kind, json.dumps(detail, sort_keys=True, default=str)))


def _storable(value):
    """`value`, or for text, the same text as valid UTF-8 (each lone surrogate becomes "?")."""
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value
