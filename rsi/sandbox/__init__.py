"""Isolated execution of code a model wrote: `Sandbox` (a pool of slots), `Limits`, `Execution`.

Programs run under bubblewrap with dropped privileges, a seccomp filter, per-slot uids and
cgroups (`rsi.sandbox.isolation`, `rsi.sandbox.cgroups`), never in the rsi process; grading
happens on the host (`rsi.sandbox.grading`). `rsi doctor` shows what this machine supports.
"""

from rsi.sandbox.limits import KILL_REASONS, Execution, Limits
from rsi.sandbox.pool import Job, Sandbox

__all__ = ["KILL_REASONS", "Execution", "Job", "Limits", "Sandbox"]
