"""Commands about the machine and the parts: tasks, sandbox, doctor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rsi.cli.base import _commands, app, console
from rsi.errors import RsiError


@app.command()
@_commands
def tasks() -> None:
    """List the registered tasks with their difficulty ranges and an example.

    Example: rsi tasks
    """
    from rsi.tasks import tasks_table

    console.print(tasks_table())


sandbox_app = typer.Typer(no_args_is_help=True, help="Run programs exactly as model-written code is run.")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("run")
@_commands
def sandbox_run(
    file: Annotated[Path, typer.Argument(help="a Python program")],
    stdin: Annotated[Path | None, typer.Option("--stdin", help="file fed to the program's standard input")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="wall-clock limit in seconds")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the execution as JSON")] = False,
) -> None:
    """Run FILE in the sandbox (same isolation and limits as code tasks) and show how it ended.

    Exit status 0 when the program exited with 0, 1 when it failed or was killed.

    Example: rsi sandbox run solution.py --stdin input.txt --timeout 5 --json
    """
    from dataclasses import replace

    from rsi.sandbox import Limits, Sandbox
    from rsi.sandbox.show import execution

    for f in (file, stdin):
        if f is not None and not f.is_file():
            raise RsiError(f"{f} is not a file")
    if timeout is not None and timeout <= 0:
        raise RsiError(f"--timeout must be > 0 seconds, got {timeout}")
    limits = Limits() if timeout is None else replace(Limits(), wall_s=timeout)
    with Sandbox(limits, slots=1) as sb:
        ex = sb.run(file.read_text(errors="replace"), stdin.read_bytes() if stdin else b"")
    if as_json:
        print(json.dumps(ex.describe(), indent=1))
    else:
        console.print(execution(ex))
    raise typer.Exit(0 if ex.ok else 1)


@app.command()
@_commands
def doctor() -> None:
    """Check what this machine can isolate for model-written code, and how to fix what is missing;
    list the devices (CUDA, bf16) and engines (vLLM, Ray) models can run on.

    Example: rsi doctor
    """
    from rich.table import Table

    from rsi.engine.device import inventory
    from rsi.sandbox.doctor import static_checks
    from rsi.sandbox.pool import end_to_end
    from rsi.sandbox.show import checks

    engines = Table("part", "found", "to get it", title="devices and engines for models")
    for row in inventory():
        engines.add_row(*(escape(x) for x in row))
    console.print(engines)
    found = static_checks()
    if all(c.ok for c in found):
        found.append(end_to_end())
    console.print(checks(found))
    ok = all(c.ok for c in found)
    console.print("[green]code tasks can run here[/]" if ok else "[red]code tasks will refuse to run here[/]")
    raise typer.Exit(0 if ok else 1)
