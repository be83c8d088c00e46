"""The `rsi` command line (typer + rich). Commands only wire library functions together.

    rsi run [CONFIG] [--run-dir DIR] [--set a.b=c ...]   start a loop (default config: "default")
    rsi resume RUN [--set budget.k=v ...]                continue a stopped run (limits may be raised)
    rsi status RUN [--json]                              where a run stands
    rsi report RUN                                       write RUN/report.html
    rsi export RUN [--out FILE]                          accepted training data as JSONL
    rsi tasks                                            the registered tasks
    rsi sandbox run FILE [--stdin F] [--timeout S] [--json]   run a program as model-written code runs
    rsi doctor                                           what this machine can isolate
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


STOPPED_EXIT = 3  # the run stopped cleanly before its end (budget, STOP file, SIGTERM); resumable


def _fail(e: RsiError) -> None:
    err.print(f"[bold red]error:[/] {e}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(2)


def _finish(go) -> None:
    """Run `go()` (which returns the run directory), write the report, say how the run ended."""
    from rsi.report import write_report
    from rsi.stopping import RunStopped

    try:
        out = go()
    except RunStopped as e:
        write_report(e.run_dir)
        err.print(f"[bold yellow]stopped:[/] {e}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(STOPPED_EXIT) from None
    except RsiError as e:
        _fail(e)
    try:
        report = write_report(out)
    except RsiError as e:
        _fail(e)
    console.print(f"run finished: {out}  report: {report}")


@app.command()
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
    from rsi.config import load_config
    from rsi.loop import start

    try:
        cfg = load_config(config, set_ or [])
    except RsiError as e:
        _fail(e)
    _finish(lambda: start(cfg, run_dir, console))


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="raise a limit: budget.<key>=v or loop.cycles=n (repeatable); the rest is frozen")] = None,
) -> None:
    """Continue a stopped or killed run from its last completed stage (exit status 3 if it stops again).

    Example: rsi resume runs/default-20261122-101500 --set budget.cpu_hours=4
    """
    from rsi.loop import resume as resume_run

    _finish(lambda: resume_run(run_dir, console, set_ or []))


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
def review(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    approve: Annotated[bool, typer.Option("--approve", help="approve the waiting candidate's promotion")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="reject it: the run keeps its champion")] = False,
    why: Annotated[str, typer.Option("--why", help="the reason, recorded with the verdict")] = "",
    by: Annotated[str | None, typer.Option("--by", help="who decides (default: the login name)")] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="a vetoed cycle other than the latest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the candidate a run awaits approval for (gate.require_approval), or a promotion a
    monitor vetoed, and record a verdict.

    Without --approve/--reject it shows the candidate's accuracy against the champion's, the
    cycle's monitor readings and a sample of the new training data. For a waiting candidate
    `rsi resume RUN` then acts; approving a vetoed one overrules the monitor and makes it the
    champion at once.

    Example: rsi review runs/quick-20261122-101500 --approve --by alice --why "gains hold at d4-d5"
    """
    from rsi.review import ReviewError, record, summary

    try:
        if approve and reject:
            raise ReviewError("pass one of --approve and --reject, not both")
        if approve or reject:
            done = record(run_dir, approve, why, by, cycle)
            if done["overrule"]:
                what = ("overruled the veto: it is the champion now" if approve else
                        "the rollback stands")
            else:
                what = f"continue with `rsi resume {run_dir}`"
            console.print(f"recorded: {done['verdict']} {done['candidate']} (cycle {done['cycle']}) by {done['by']} "
                          f"({done['why']}); {what}")
            return
        st = summary(run_dir, cycle)
    except RsiError as e:
        _fail(e)
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        from rsi.status import format_review

        console.print(format_review(st))


@app.command()
def add(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    file: Annotated[Path, typer.Argument(help='JSONL file: {"prompt": ..., "answer": ..., "difficulty": ...} a line')],
) -> None:
    """Add people's problems (with answers) to a run; they join its next cycle, marked `human`.

    Every row is checked first (format, the task's difficulty range, no overlap with a held-out
    prompt); a bad one names its line and nothing is added.

    Example: rsi add runs/quick-20261122-101500 my_problems.jsonl
    """
    from rsi.human import add_problems

    try:
        cycle, made = add_problems(run_dir, file)
    except RsiError as e:
        _fail(e)
    console.print(f"added {len(made)} human problems to cycle {cycle} of {run_dir}; they are answered when that "
                  f"cycle runs (`rsi resume {run_dir}`, with --set loop.cycles=N if the run has finished)")


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


sandbox_app = typer.Typer(no_args_is_help=True, help="Run programs exactly as model-written code is run.")
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("run")
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

    try:
        for f in (file, stdin):
            if f is not None and not f.is_file():
                raise RsiError(f"{f} is not a file")
        if timeout is not None and timeout <= 0:
            raise RsiError(f"--timeout must be > 0 seconds, got {timeout}")
        limits = Limits() if timeout is None else replace(Limits(), wall_s=timeout)
        with Sandbox(limits, slots=1) as sb:
            ex = sb.run(file.read_text(errors="replace"), stdin.read_bytes() if stdin else b"")
    except RsiError as e:
        _fail(e)
    if as_json:
        print(json.dumps(ex.describe(), indent=1))
    else:
        console.print(execution(ex))
    raise typer.Exit(0 if ex.ok else 1)


@app.command()
def doctor() -> None:
    """Check what this machine can isolate for model-written code, and how to fix what is missing.

    Example: rsi doctor
    """
    from rsi.sandbox.doctor import end_to_end, static_checks
    from rsi.sandbox.show import checks

    found = static_checks()
    if all(c.ok for c in found):
        found.append(end_to_end())
    console.print(checks(found))
    ok = all(c.ok for c in found)
    console.print("[green]code tasks can run here[/]" if ok else "[red]code tasks will refuse to run here[/]")
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
