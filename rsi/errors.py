"""Errors the user can act on. The CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class RsiError(Exception):
    """Base class: the message says what is wrong, where, and what to do."""


class ConfigError(RsiError):
    """A config key or value is wrong (the message names the full key path)."""


class LedgerError(RsiError):
    """The ledger cannot be opened or used (missing, newer schema, another run's)."""


class CheckpointError(RsiError):
    """A checkpoint is missing files or its hashes do not match its manifest."""


class RunDirError(RsiError):
    """A run directory is missing, or already holds a different run."""


class SandboxUnavailable(RsiError):
    """Model-written code cannot be isolated on this machine (the message lists what is missing)."""


class PartFailed(RsiError):
    """A part from the user's own code (a labeler, a filter) raised while a stage called it. The stage
    rolls back as if killed; the loop adds where (`in_stage`) and how to go on."""

    def __init__(self, kind: str, ref: str, error: BaseException) -> None:
        self.kind, self.ref = kind, ref
        self.base = f"{kind} {ref!r} raised {type(error).__name__}: {error}{_where(error, ref)}"
        super().__init__(self.base)

    def __reduce__(self):  # pickled whole (a Ray worker's error reaches the driver)
        return _part_failed, (self.kind, self.ref, self.base, self.args)

    def in_stage(self, run_dir: object, cycle: int, stage: str) -> PartFailed:
        self.args = (f"{self.base}, in cycle {cycle}'s {stage} stage. That stage rolled back; everything before it "
                     f"is kept in the ledger. Fix the {self.kind}, then `rsi resume {run_dir} --allow-changed` "
                     "(its file changed).",)
        return self


def _part_failed(kind: str, ref: str, base: str, args: tuple) -> PartFailed:
    e = PartFailed.__new__(PartFailed)
    e.kind, e.ref, e.base, e.args = kind, ref, base, args
    return e


def _where(error: BaseException, ref: str) -> str:
    """' (at FILE:LINE in FUNCTION)': where the part raised, the innermost line of its own file when
    `ref` names one (`path/file.py:name`), else the traceback's innermost frame."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    own = ref.rpartition(":")[0]
    mine = [f for f in frames if own.endswith(".py") and f[0].co_filename.endswith(own.lstrip("./"))]
    if not (frames := mine or frames):
        return ""
    code, line = frames[-1]
    return f" (at {code.co_filename}:{line} in {code.co_name})"
