"""A run's state at a cycle boundary, copied: what PBT's exploit hands from a better trial to a worse one.

A snapshot is itself a run directory: the ledger as it stands (SQLite's online backup, so a copy
taken while nothing writes is whole), the champion's checkpoint (with its friends under
`label.friends`), the `champion` file and the frozen `config.yaml`. Only a promoted champion (or the
base model) is ever copied, never an unpromoted candidate: the champion is what the run's gates
decided (`rsi.run.context.champion`). Every copied checkpoint is verified against its manifest's
digests after the copy (`rsi.engine.manifest.verify_checkpoint`), so a damaged copy stops the
exploit instead of training on it. `fork` makes a new run directory from a snapshot and records
where it came from as a `fork` event in the new run's ledger.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from rsi.engine.manifest import checkpoint_sha256, verify_checkpoint
from rsi.errors import RunDirError
from rsi.ledger import Ledger
from rsi.run.context import champion, champion_cycle, model_name
from rsi.run.rundir import CHAMPION, CONFIG, LEDGER, MODELS, STATE
from rsi.stages import between_cycles


def boundary(ledger: Ledger) -> int:
    """The cycle a run has completed (its cycle's last stage done); RunDirError mid-cycle."""
    done = ledger.completed_stages()
    if not done or not between_cycles(done):
        where = f"after {done[-1][1]} of cycle {done[-1][0]}" if done else "before its first stage"
        raise RunDirError(f"{ledger.path.parent} stands {where}: a run is copied only between cycles")
    return done[-1][0]


def snapshot(run_dir: Path, out: Path) -> dict:
    """Copy the run in `run_dir` at its cycle boundary to `out` (a new directory); returns
    {cycle, champion, weights_sha256}."""
    run_dir, out = Path(run_dir), Path(out)
    with Ledger(run_dir / LEDGER, create=False) as ledger:
        cycle, champ, made = boundary(ledger), champion(ledger), champion_cycle(ledger)
        friends = ledger.run_info()["config"].get("label", {}).get("friends", 0)
    (out / MODELS).mkdir(parents=True)
    src, dst = sqlite3.connect(run_dir / LEDGER), sqlite3.connect(out / LEDGER)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    for name in [champ] + [model_name(made, k) for k in range(1, friends + 1)]:
        shutil.copytree(run_dir / MODELS / name, out / MODELS / name)
        verify_checkpoint(out / MODELS / name)
    for name in (CONFIG, STATE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    (out / CHAMPION).write_text(champ + "\n")
    return {"cycle": cycle, "champion": champ, "weights_sha256": checkpoint_sha256(out / MODELS / champ)}


def fork(snap: Path, run_dir: Path, origin: dict) -> None:
    """A new run directory `run_dir` from the snapshot `snap`, its checkpoints verified again, with a
    `fork` event saying where it came from (`origin`: trial, cycle, champion, weights digest)."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        raise RunDirError(f"{run_dir} exists already: a fork makes a new run directory")
    shutil.copytree(snap, run_dir)
    for model in (run_dir / MODELS).iterdir():
        verify_checkpoint(model)
    with Ledger(run_dir / LEDGER, create=False) as ledger:
        ledger.add_event(boundary(ledger), "fork", origin)
