"""A run's content fingerprint: what it produced, without when or how long it took.

One sha256 (and row count) per ledger table, over every row in a fixed order, leaving out the
columns that record time (`finished_at`, `wall_s`, `cpu_s`, `extra_json`) and the `events` table
(stops, resumes and reviews are how a run was driven, not what it produced); plus the champion's
name and weights hash. The same config and seed on one machine give the same fingerprint, and a run
killed anywhere and resumed has the fingerprint of the uninterrupted run (`tests/test_end_to_end.py`,
`benchmarks/fault_injection.py`). A lost or duplicated row changes its table's count and hash.

Example:
    >>> a, b = fingerprint(Path("runs/a")), fingerprint(Path("runs/b"))   # doctest: +SKIP
    >>> differences(a, b)                                                  # doctest: +SKIP
    []
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from rsi.engine.manifest import checkpoint_sha256
from rsi.run.rundir import CHAMPION, MODELS, ledger_path

QUERIES = {
    "stages": "SELECT cycle, stage, generated_tokens, train_sequences, train_tokens FROM stages ORDER BY cycle, stage",
    "problems": "SELECT * FROM problems ORDER BY id",
    "samples": "SELECT * FROM samples ORDER BY cycle, model, problem_id, sample_index",
    "labels": "SELECT * FROM labels ORDER BY cycle, problem_id, sample_index",
    "evals": "SELECT * FROM evals ORDER BY cycle, model, difficulty",
    "gates": "SELECT * FROM gates ORDER BY cycle",
    "metrics": "SELECT * FROM metrics ORDER BY cycle, stage, metrics_json",
    "proposals": "SELECT * FROM proposals ORDER BY cycle, difficulty, idx",
    "monitors": "SELECT * FROM monitors ORDER BY cycle, monitor",
    "eval_answers": "SELECT * FROM eval_answers ORDER BY cycle, model, problem_id",
}


def fingerprint(run_dir: Path) -> dict:
    """{table: {"rows", "sha256"}, "champion": name, "champion_weights_sha256": hash} of a run directory."""
    run_dir = Path(run_dir)
    con = sqlite3.connect(f"file:{ledger_path(run_dir)}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        out: dict = {}
        for name, sql in QUERIES.items():
            h, n = hashlib.sha256(), 0
            for row in con.execute(sql) if name in tables else ():
                h.update(repr(row).encode())
                n += 1
            out[name] = {"rows": n, "sha256": h.hexdigest()}
    finally:
        con.close()
    champion_file = run_dir / CHAMPION
    champion = champion_file.read_text().strip() if champion_file.is_file() else None
    out["champion"] = champion
    out["champion_weights_sha256"] = checkpoint_sha256(run_dir / MODELS / champion) if champion else None
    return out


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two fingerprints, one line each (empty: the same run)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)} != {b.get(key)}")
    return out
