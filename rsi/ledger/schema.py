"""The ledger's SQLite schema and how a ledger file is opened (created, version-checked, WAL).

`SCHEMA_VERSION` is the version this rsi writes and reads. Tables added since version 1 are
additive (`ADDITIVE`: `CREATE TABLE IF NOT EXISTS`): a new ledger has every table from the start,
and an older one gets the missing ones when it is opened for writing (no row is rewritten), so
rsi versions that do not read them are unaffected. A ledger opened read-only (`readonly`, for
status, report and export; also on a read-only file system) is never written to. `meta` records
the schema version, when the ledger was made, and the rsi version and source revision that made it.
"""

from __future__ import annotations

import functools
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from rsi.errors import LedgerError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,
    config_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE stages (
    cycle INTEGER NOT NULL, stage TEXT NOT NULL, finished_at TEXT NOT NULL,
    wall_s REAL NOT NULL, cpu_s REAL NOT NULL, generated_tokens INTEGER NOT NULL,
    train_sequences INTEGER NOT NULL, train_tokens INTEGER NOT NULL, extra_json TEXT NOT NULL,
    PRIMARY KEY (cycle, stage));
CREATE TABLE problems (
    id TEXT PRIMARY KEY, cycle INTEGER NOT NULL, task TEXT NOT NULL, difficulty INTEGER NOT NULL,
    split TEXT NOT NULL, seed INTEGER NOT NULL, prompt TEXT NOT NULL, answer TEXT NOT NULL,
    source TEXT NOT NULL);
CREATE TABLE samples (
    cycle INTEGER NOT NULL, model TEXT NOT NULL, problem_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL, completion TEXT NOT NULL, n_tokens INTEGER NOT NULL,
    UNIQUE (problem_id, sample_index, cycle));
CREATE TABLE labels (
    cycle INTEGER NOT NULL, problem_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
    answer TEXT NOT NULL, kept INTEGER NOT NULL, reason TEXT NOT NULL, agreement REAL NOT NULL,
    audit_correct INTEGER, UNIQUE (problem_id, sample_index, cycle));
CREATE TABLE evals (
    cycle INTEGER NOT NULL, model TEXT NOT NULL, difficulty INTEGER NOT NULL, n INTEGER NOT NULL,
    correct INTEGER NOT NULL, accuracy REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    per_problem TEXT NOT NULL, UNIQUE (cycle, model, difficulty));
CREATE TABLE gates (
    cycle INTEGER PRIMARY KEY, champion TEXT NOT NULL, candidate TEXT NOT NULL,
    promote INTEGER NOT NULL, reason TEXT NOT NULL, gain REAL NOT NULL, gain_lo REAL NOT NULL,
    worst_regression REAL NOT NULL);
CREATE TABLE metrics (cycle INTEGER NOT NULL, stage TEXT NOT NULL, metrics_json TEXT NOT NULL);
CREATE INDEX samples_cycle ON samples (cycle);
CREATE INDEX labels_cycle ON labels (cycle);
CREATE INDEX problems_cycle ON problems (cycle);
"""
# Self-play proposals: created with the first proposal (additive).
PROPOSALS = """
CREATE TABLE IF NOT EXISTS proposals (
    cycle INTEGER NOT NULL, proposer TEXT NOT NULL, difficulty INTEGER NOT NULL, idx INTEGER NOT NULL,
    prompt TEXT NOT NULL, completion TEXT NOT NULL, n_tokens INTEGER NOT NULL, finished INTEGER NOT NULL,
    valid INTEGER NOT NULL, reason TEXT NOT NULL, problem_ids TEXT NOT NULL,
    UNIQUE (cycle, difficulty, idx));
"""
# Integrity monitors' readings (`rsi.monitors`), one per monitor and cycle, written in the
# transaction of the stage that measured them: created with the first reading (additive).
MONITORS = """
CREATE TABLE IF NOT EXISTS monitors (
    cycle INTEGER NOT NULL, monitor TEXT NOT NULL, value_json TEXT NOT NULL, alert INTEGER NOT NULL,
    message TEXT NOT NULL, UNIQUE (cycle, monitor));
"""

# Every held-out answer the evaluate stage scored: the model's completion and whether it was
# correct, per problem (additive; `evals.per_problem` has the same 0/1s in heldout_set's order).
EVAL_ANSWERS = """
CREATE TABLE IF NOT EXISTS eval_answers (
    cycle INTEGER NOT NULL, model TEXT NOT NULL, difficulty INTEGER NOT NULL, problem_id TEXT NOT NULL,
    completion TEXT NOT NULL, correct INTEGER NOT NULL, UNIQUE (cycle, model, problem_id));
"""

# The held-out problems a run evaluated on, each once (its prompt and reference answer), so that an
# `eval_answers` row can be read beside its problem without regenerating it (additive).
HELDOUT = """
CREATE TABLE IF NOT EXISTS heldout (
    problem_id TEXT PRIMARY KEY, task TEXT NOT NULL, difficulty INTEGER NOT NULL, prompt TEXT NOT NULL,
    answer TEXT NOT NULL);
"""

# Run events outside any stage (a stop and why, a resume and its overrides): created with the first
# event (additive). Not part of any stage's transaction, so a run's stage rows are the same
# whether or not it was ever stopped.
EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    at TEXT NOT NULL, cycle INTEGER NOT NULL, kind TEXT NOT NULL, detail_json TEXT NOT NULL);
"""

# People's labels (`rsi label`, the console's Label page), kept apart from the labelers' rows in `labels`:
# `correct` 1 gives `answer` as the problem's right answer (it trains as an example of source 'human'),
# 0 marks a kept label with that answer wrong (it trains no more). `cycle` is the first cycle whose
# train stage had not run when it was recorded: from that cycle on it counts (additive).
HUMAN_LABELS = """
CREATE TABLE IF NOT EXISTS human_labels (
    at TEXT NOT NULL, cycle INTEGER NOT NULL, problem_id TEXT NOT NULL, answer TEXT NOT NULL,
    correct INTEGER NOT NULL, person TEXT NOT NULL, why TEXT NOT NULL, UNIQUE (problem_id, answer, cycle));
"""

ADDITIVE = {"proposals": PROPOSALS, "monitors": MONITORS, "events": EVENTS, "eval_answers": EVAL_ANSWERS,
            "human_labels": HUMAN_LABELS, "heldout": HELDOUT}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.cache
def provenance() -> dict[str, str]:
    """The rsi version and source revision running now ("unknown" outside a git checkout; a
    "-dirty" suffix when the checkout has uncommitted changes)."""
    import rsi

    root, revision = Path(rsi.__file__).resolve().parent.parent, "unknown"
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
                                 capture_output=True, text=True, timeout=10)
            revision = out.stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {"rsi_version": rsi.__version__, "source_revision": revision}


def prepare(con: sqlite3.Connection, path: Path, create: bool, readonly: bool = False) -> None:
    """Create the schema in an empty file (when `create`), else check the version and add the
    additive tables it lacks (unless `readonly`); then WAL mode."""
    # Read the version before anything that writes (journal_mode=WAL rewrites the header),
    # so a ledger from a newer rsi is left byte-for-byte untouched.
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        if not create:
            raise LedgerError(f"{path}: empty file, not an rsi ledger")
        con.execute("PRAGMA journal_mode=WAL")
        meta = {"schema_version": str(SCHEMA_VERSION), "created_at": now(), **provenance()}
        con.execute("BEGIN")
        for statement in (SCHEMA + "".join(ADDITIVE.values())).split(";"):
            if statement.strip():
                con.execute(statement)
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        con.execute("COMMIT")
        return
    row = None
    if "meta" in tables:
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise LedgerError(f"{path}: not an rsi ledger (no schema version in a 'meta' table)")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"{path}: ledger schema version {version} is newer than version "
            f"{SCHEMA_VERSION}, the newest this rsi supports; upgrade rsi to read it "
            "(the file was not modified)")
    if version < SCHEMA_VERSION:  # no older versions exist yet; migrations would go here
        raise LedgerError(f"{path}: unknown ledger schema version {version}")
    if readonly:
        return
    con.execute("PRAGMA journal_mode=WAL")
    missing = [sql for name, sql in ADDITIVE.items() if name not in tables]
    if missing:
        con.execute("BEGIN")
        for sql in missing:
            con.execute(sql)
        con.execute("COMMIT")
