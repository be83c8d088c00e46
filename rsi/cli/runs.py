"""Commands that run a loop: run, resume, repair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rsi.cli.base import _commands, _finish, app, console


@app.command()
@_commands
def run(
    config: Annotated[str | None, typer.Argument(help="built-in config name or a YAML file")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="where to write the run")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: a.b=c (repeatable)")] = None,
) -> None:
    """Run a self-improvement loop.

    It stops cleanly at the next stage boundary when a budget (budget.*) is spent, a file named
    STOP appears in the run directory, or it gets SIGTERM; it then exits with status 3 and
    `rsi resume` continues it.

    Example: rsi run quick --set loop.cycles=3 --set budget.cpu_hours=1 --run-dir runs/try
    """
    from rsi.run.stopping import catch_signals

    with catch_signals():  # first: a signal while torch loads is a clean stop too
        from rsi.loop import start
        from rsi.resolve import load

        cfg = load(config, set_ or [])
        _finish(lambda: start(cfg, run_dir, console))


@app.command()
@_commands
def resume(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="raise a limit: budget.<key>=v or loop.cycles=n (repeatable); the rest is frozen")] = None,
    allow_changed: Annotated[bool, typer.Option(
        "--allow-changed", help="go on though a task, reward or model file changed since the run started")] = False,
    recipe: Annotated[list[str] | None, typer.Option(
        "--recipe", help="change how the next cycles train, sample, label or propose: train.lr=..., "
                         "generate.temperature=..., label.vote_threshold=... (recorded; only between cycles)")] = None,
) -> None:
    """Continue a stopped or killed run from its last completed stage (exit status 3 if it stops again).

    Example: rsi resume runs/default-20261122-101500 --set budget.cpu_hours=4
    Example: rsi resume runs/default-20261122-101500 --set loop.cycles=8 --recipe train.lr=5e-4
    """
    from rsi.run.stopping import catch_signals

    with catch_signals():
        from rsi.loop import resume as resume_run

        _finish(lambda: resume_run(run_dir, console, set_ or [], allow_changed=allow_changed, recipe=recipe or []))



@app.command()
@_commands
def repair(run_dir: Annotated[Path, typer.Argument(help="the run directory")]) -> None:
    """Retrain each checkpoint that no longer matches its manifest, with the seeds it was trained
    with, and keep it only if its weights equal the digest the run recorded.

    Example: rsi repair runs/quick-20261122-101500
    """
    from rsi.repair import repair as repair_run

    done = repair_run(run_dir, console)
    for line in done or ["every checkpoint matches its manifest; nothing to repair"]:
        console.print(escape(line), highlight=False, soft_wrap=True)


