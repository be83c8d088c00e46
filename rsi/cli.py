"""The `rsi` command line (typer + rich). Commands only wire library functions together.

    rsi run [CONFIG] [--run-dir DIR] [--set a.b=c ...]   start a loop (default config: "default")
    rsi resume RUN                                       continue a stopped run
    rsi status RUN [--json]                              where a run stands
    rsi report RUN                                       write RUN/report.html
    rsi export RUN [--out FILE]                          accepted training data as JSONL
    rsi tasks                                            the registered tasks
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rsi.errors import RsiError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Recursive self-improvement loops for language models.")
console = Console()
err = Console(stderr=True)


def _fail(e: RsiError) -> None:
    err.print(f"[bold red]error:[/] {e}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    config: Annotated[str | None, typer.Argument(help="built-in config name or a YAML file")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="where to write the run")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: a.b=c (repeatable)")] = None,
) -> None:
    """Run a self-improvement loop.

    Example: rsi run quick --set loop.cycles=3 --run-dir runs/try
    """
    from rsi.config import load_config
    from rsi.loop import start
    from rsi.report import write_report

    try:
        cfg = load_config(config, set_ or [])
        out = start(cfg, run_dir, console)
        report = write_report(out)
    except RsiError as e:
        _fail(e)
    console.print(f"run finished: {out}  report: {report}")


@app.command()
def resume(run_dir: Annotated[Path, typer.Argument(help="the run directory")]) -> None:
    """Continue a stopped or killed run from its last completed stage.

    Example: rsi resume runs/default-20261122-101500
    """
    from rsi.loop import resume as resume_run
    from rsi.report import write_report

    try:
        out = resume_run(run_dir, console)
        report = write_report(out)
    except RsiError as e:
        _fail(e)
    console.print(f"run finished: {out}  report: {report}")


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Where a run stands: champion, frontier, accuracy, cost.

    Example: rsi status runs/quick-20261122-101500 --json
    """
    from rsi.status import format_status
    from rsi.status import status as get_status

    try:
        st = get_status(run_dir)
    except RsiError as e:
        _fail(e)
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        console.print(format_status(st))


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="the run directory")]) -> None:
    """Write RUN/report.html with plots.

    Example: rsi report runs/quick-20261122-101500
    """
    from rsi.report import write_report

    try:
        console.print(f"wrote {write_report(run_dir)}")
    except RsiError as e:
        _fail(e)


@app.command()
def export(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           out: Annotated[Path | None, typer.Option("--out", help="output JSONL file")] = None) -> None:
    """Write the accepted (self-produced and verified) training data as JSONL.

    Example: rsi export runs/quick-20261122-101500 --out accepted.jsonl
    """
    from rsi.export import export as export_run

    try:
        console.print(f"wrote {export_run(run_dir, out)}")
    except RsiError as e:
        _fail(e)


@app.command()
def tasks() -> None:
    """List the registered tasks with their difficulty ranges and an example.

    Example: rsi tasks
    """
    from rsi.tasks import tasks_table

    console.print(tasks_table())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
