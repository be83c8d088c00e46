"""The files a run reads besides its config: a task file (`jsonl:`, `code_tests:`), the plug-ins
it names by file (`path/to/file.py:Name`: a task, rewards, a labeler, filters, objectives;
`rsi.registry`) and a pretrained model (`model.path`).

Their paths are made absolute when the config is made (`rsi.config.base.absolute`), so every
later command reads the same files from any directory. When a run starts, each file's sha256 is
recorded (an `inputs` event); every resume compares, and refuses when one changed, since the
resumed run would then train or score on other data than it began with. `--allow-changed`
goes on with the new content and records the new digests (another `inputs` event, with what
changed). The model is checked only until the base stage has loaded it into the run's own
`cycle-0000` checkpoint; after that the run no longer reads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rsi.config import Config
from rsi.errors import RunDirError
from rsi.hashing import file_sha256
from rsi.ledger import Ledger


class InputChanged(RunDirError):
    """A file the run reads changed (or is gone) since the run started."""


def input_files(cfg: Config) -> dict[str, Path]:
    """What the run reads, by the config key that names it."""
    files: dict[str, Path] = {}
    kind, colon, arg = cfg.task.partition(":")
    if colon and kind in ("jsonl", "code_tests"):
        files["task"] = Path(arg)
    for key, ref in cfg.references().items():  # plug-ins from files: tasks, rewards, labelers, filters, objectives
        file, colon, name = ref.rpartition(":")
        if colon and file.endswith(".py") and name.isidentifier():
            files[key] = Path(file)
    if cfg.model.kind == "hf" and cfg.model.path and not cfg.model.path.startswith("pkg:"):
        files["model.path"] = Path(cfg.model.path)
    return files


def digest(path: Path) -> str | None:
    """sha256 of a file, or of a directory's files (names and contents); None if it is gone."""
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def record(ledger: Ledger, cfg: Config, changed: list[str] | None = None, cycle: int = 0) -> None:
    """Record the digests of the run's input files (at start, and when a resume allowed a change)."""
    files = {key: {"path": str(p), "sha256": digest(p)} for key, p in input_files(cfg).items()}
    if files:
        ledger.add_event(cycle, "inputs", {"files": files, **({"changed": changed} if changed else {})})


def recorded(ledger: Ledger) -> dict[str, dict]:
    """The latest recorded digest of each input file, by config key."""
    out: dict[str, dict] = {}
    for e in ledger.events("inputs"):
        out.update(e["detail"]["files"])
    return out


def check(ledger: Ledger, cfg: Config, allow_changed: bool = False) -> list[str]:
    """Compare the input files with their recorded digests. Raises InputChanged naming each file
    that changed, unless `allow_changed`: then records the new digests and returns a note per file."""
    before = recorded(ledger)
    done = ledger.completed_stages()
    changed = []
    for key, path in input_files(cfg).items():
        if key not in before or (key == "model.path" and (0, "base") in done):
            continue
        now = digest(path)
        if now != before[key]["sha256"]:
            what = "is gone" if now is None else f"changed (sha256 {before[key]['sha256'][:12]}… → {now[:12]}…)"
            changed.append(f"{key} {path} {what} since the run started")
    if changed and not allow_changed:
        raise InputChanged("; ".join(changed) + ". A resumed run would read other data than it began with. Restore "
                           "the file, or resume with --allow-changed to go on with its new content (recorded).")
    if changed:
        record(ledger, cfg, changed, max((c for c, _ in done), default=0))
    return changed
