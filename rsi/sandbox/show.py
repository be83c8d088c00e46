"""How `rsi sandbox run` and `rsi doctor` print an execution and the machine's checks."""

from __future__ import annotations

import signal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from rsi.sandbox.doctor import Check
from rsi.sandbox.limits import Execution


def ending(ex: Execution) -> str:
    """One line: how the program ended."""
    if ex.killed:
        why = {"timeout": f"wall-clock limit of {ex.limits.wall_s:g} s",
               "cpu_time": f"CPU limit of {ex.limits.cpu_s} s",
               "memory": f"memory limit of {ex.limits.memory_mb} MB (out-of-memory kill)",
               "output_limit": f"output limit of {ex.limits.output_bytes} bytes per stream"}[ex.killed]
        return f"killed by the sandbox: {why}"
    if ex.signal is not None:
        return f"ended by signal {signal.Signals(ex.signal).name}"
    return f"exited with status {ex.exit_code}"


def execution(ex: Execution) -> Group:
    head = Text(ending(ex), style="bold green" if ex.ok else "bold red")
    facts = Text(f"wall {ex.wall_s:.3f} s · cpu {ex.cpu_s:.3f} s · peak memory {ex.peak_memory_mb:.1f} MB")
    parts = [head, facts]
    for name, text, cut in (("stdout", ex.stdout, ex.stdout_truncated), ("stderr", ex.stderr, ex.stderr_truncated)):
        note = f" (cut at {ex.limits.output_bytes} bytes)" if cut else ""
        parts += [Text(f"── {name}{note} ──", style="dim"), Text(text.rstrip("\n") or "(empty)")]
    limits = Table("limit", "value", title="limits in force", title_justify="left")
    for key, value in ex.limits.describe().items():
        limits.add_row(key, str(value))
    parts.append(limits)
    return Group(*parts)


def checks(found: list[Check]) -> Table:
    table = Table("check", "", "found", "to fix", title="sandbox for model-written code")
    for c in found:
        state = "[red]missing[/]" if not c.ok else "[yellow]note[/]" if c.fix else "[green]ok[/]"
        table.add_row(c.name, state, c.detail, c.fix)
    return table
