"""Errors the user can act on. The CLI prints their message (no traceback) and exits non-zero."""


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
