"""The run directory's one owner: the names of what it holds and how a file in it is written.

    RUN/config.yaml    the resolved config, frozen at start
    RUN/ledger.sqlite  everything that happened (`rsi.ledger`)
    RUN/models/        one checkpoint per trained model (`rsi.engine.checkpoint`)
    RUN/champion       the promoted checkpoint's name
    RUN/state.json     the last completed stage
    RUN/progress.json  while the run runs: its stage and the stage's progress (`rsi.progress.live`)
    RUN/.rsi-lock      held by the process working on the run (`rsi.run.runlock`)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rsi.errors import RunDirError
from rsi.ledger import Ledger

LEDGER = "ledger.sqlite"
CONFIG = "config.yaml"
MODELS = "models"
CHAMPION = "champion"
STATE = "state.json"
LIVE = "progress.json"


def ledger_path(run_dir: Path) -> Path:
    return Path(run_dir) / LEDGER


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`, so a reader or a
    crash never sees half a file. The file is readable by its owner only (0600), whatever the
    umask: it holds the run's data."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_ledger(run_dir: Path) -> Ledger:
    """The run's ledger, opened read-only; RunDirError if there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    path = ledger_path(run_dir)
    if not path.is_file():
        raise RunDirError(f"{path}: no ledger here; {run_dir} is not an rsi run directory "
                          "(or its run never started)")
    return Ledger(path, create=False, readonly=True)
