"""The search ledger (`SEARCH/search.sqlite`): every trial, its recipe at each cycle, its lineage,
its scores and cost. Written by the search's driver alone (Tune's callbacks), read by `rsi status
SEARCH` and `rsi report SEARCH`. Each trial's own run directory keeps its own run ledger as usual.

    search       one row: the config, the space, the scheduler, the population, the budget
    trials       a trial: its id, its first recipe, when it started
    iterations   a trial's cycle: the recipe it ran with, the run directory, frontier, accuracy just
                 above it, score, the run's cumulative CPU and wall seconds (its lineage's, forks
                 included), the cycle's own CPU and wall seconds (in the trial), whether the gate promoted
    lineage      an exploit: which trial's champion (cycle, name, weights digest) a trial copied
    events       start, resume, stop and the driver's timings (Tune's overhead)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from rsi.errors import RunDirError
from rsi.ledger.schema import now

LEDGER = "search.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS search (id INTEGER PRIMARY KEY CHECK (id = 1), config_json TEXT NOT NULL,
    space_json TEXT NOT NULL, scheduler TEXT NOT NULL, population INTEGER NOT NULL, budget_cpu_hours REAL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (trial TEXT PRIMARY KEY, recipe_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS iterations (trial TEXT NOT NULL, cycle INTEGER NOT NULL, run_dir TEXT NOT NULL,
    recipe_json TEXT NOT NULL, frontier INTEGER NOT NULL, acc_above REAL NOT NULL, score REAL NOT NULL,
    cpu_s REAL NOT NULL, wall_s REAL NOT NULL, cycle_cpu_s REAL NOT NULL, cycle_wall_s REAL NOT NULL,
    promoted INTEGER NOT NULL, at TEXT NOT NULL, UNIQUE (trial, cycle));
CREATE TABLE IF NOT EXISTS lineage (at TEXT NOT NULL, trial TEXT NOT NULL, cycle INTEGER NOT NULL,
    from_trial TEXT NOT NULL, champion TEXT NOT NULL, weights_sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (at TEXT NOT NULL, kind TEXT NOT NULL, detail_json TEXT NOT NULL);
"""


class SearchLedger:
    def __init__(self, search_dir: Path, readonly: bool = False) -> None:
        self.path = Path(search_dir) / LEDGER
        if readonly and not self.path.is_file():
            raise RunDirError(f"{search_dir} is not an rsi search directory (no {LEDGER})")
        uri = self.path.resolve().as_uri() + ("?mode=ro" if readonly else "?mode=rwc")
        self._con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        self.readonly = readonly
        if not readonly:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.executescript(f"BEGIN; {SCHEMA} COMMIT;")  # the tables appear to readers all at once

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SearchLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[dict]:
        try:
            cur = self._con.execute(sql, args)
        except sqlite3.OperationalError as e:  # a reader in the moment the driver creates the file: nothing yet
            if self.readonly and "no such table" in str(e):
                return []
            raise
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    # ------------------------------------------------------------------ writes

    def set_search(self, config: dict, space: dict, scheduler: str, population: int, budget: float | None) -> None:
        """Record what the search is, once; a different search in the same directory is refused."""
        found = self.search()
        mine = {"config": config, "space": space, "scheduler": scheduler, "population": population}
        if found is not None:
            theirs = {k: found[k] for k in mine}
            if theirs != json.loads(json.dumps(mine)):
                differ = sorted(k for k in mine if theirs[k] != json.loads(json.dumps(mine[k])))
                raise RunDirError(f"{self.path.parent} holds a different search (its {', '.join(differ)} differ); "
                                  "resume it with the same config, space and scheduler, or choose another --dir")
            return
        self._con.execute("INSERT INTO search VALUES (1, ?, ?, ?, ?, ?, ?)",
                          (json.dumps(config, sort_keys=True), json.dumps(space, sort_keys=True), scheduler,
                           population, budget, now()))

    def add_trial(self, trial: str, recipe: dict) -> None:
        self._con.execute("INSERT OR IGNORE INTO trials VALUES (?, ?, ?)", (trial, json.dumps(recipe), now()))

    def add_iteration(self, trial: str, cycle: int, run_dir: str, recipe: dict, frontier: int, acc_above: float,
                      score: float, cpu_s: float, wall_s: float, cycle_cpu_s: float, cycle_wall_s: float,
                      promoted: bool) -> bool:
        """One trial's cycle; False when it was recorded already (a resumed search reporting it again)."""
        cur = self._con.execute("INSERT OR IGNORE INTO iterations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                (trial, cycle, run_dir, json.dumps(recipe), frontier, acc_above, score, cpu_s,
                                 wall_s, cycle_cpu_s, cycle_wall_s, int(promoted), now()))
        return cur.rowcount == 1

    def add_lineage(self, trial: str, cycle: int, from_trial: str, champion: str, weights_sha256: str) -> None:
        # once per copy: a trial restarted before its first report reports the same fork again
        copy = {"at": now(), "trial": trial, "cycle": cycle, "from": from_trial, "champion": champion,
                "sha": weights_sha256}
        self._con.execute("INSERT INTO lineage SELECT :at, :trial, :cycle, :from, :champion, :sha WHERE NOT EXISTS "
                          "(SELECT 1 FROM lineage WHERE trial = :trial AND cycle = :cycle AND from_trial = :from "
                          "AND champion = :champion)", copy)

    def add_event(self, kind: str, detail: dict) -> None:
        self._con.execute("INSERT INTO events VALUES (?,?,?)", (now(), kind, json.dumps(detail, default=str)))

    # ------------------------------------------------------------------ reads

    def search(self) -> dict | None:
        rows = self._rows("SELECT * FROM search")
        if not rows:
            return None
        r = rows[0]
        return {"config": json.loads(r["config_json"]), "space": json.loads(r["space_json"]),
                "scheduler": r["scheduler"], "population": r["population"], "budget_cpu_hours": r["budget_cpu_hours"],
                "created_at": r["created_at"]}

    def trials(self) -> list[dict]:
        rows = self._rows("SELECT * FROM trials ORDER BY rowid")
        return [r | {"recipe": json.loads(r.pop("recipe_json"))} for r in rows]

    def iterations(self) -> list[dict]:
        rows = self._rows("SELECT * FROM iterations ORDER BY rowid")
        for r in rows:
            r["recipe"] = json.loads(r.pop("recipe_json"))
            r["promoted"] = bool(r["promoted"])
        return rows

    def lineage(self) -> list[dict]:
        return self._rows("SELECT * FROM lineage ORDER BY rowid")

    def events(self, kind: str | None = None) -> list[dict]:
        return [{"at": r["at"], "kind": r["kind"], "detail": json.loads(r["detail_json"])} for r in self._rows(
            "SELECT at, kind, detail_json FROM events WHERE ? IS NULL OR kind = ? ORDER BY rowid", (kind, kind))]
