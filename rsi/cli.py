"""The `rsi` command line (typer + rich). Commands only wire library functions together.

    rsi run [CONFIG] [--run-dir DIR] [--set a.b=c ...]   start a loop (default config: "default")
    rsi resume RUN [--set budget.k=v ...]                continue a stopped run (limits may be raised)
    rsi status RUN [--json]                              where a run stands
    rsi review RUN [--approve|--reject --why ...]        a person's ruling on a promotion
    rsi add RUN FILE / rsi withdraw RUN --file FILE      people's problems for the next cycle
    rsi report RUN [--out FILE]                          write RUN/report.html
    rsi export RUN [--out FILE]                          accepted training data as JSONL
    rsi tasks                                            the registered tasks
    rsi sandbox run FILE [--stdin F] [--timeout S] [--json]   run a program as model-written code runs
    rsi doctor                                           what this machine can isolate

Every command's errors are one line (`_commands`): what went wrong, where, what to do; never a
traceback. Text from users and files is escaped before Rich prints it.
"""

from __future__ import annotations

import errno
import functools
import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from rsi.errors import RsiError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Recursive self-improvement loops for language models.")
console = Console()
err = Console(stderr=True)


STOPPED_EXIT = 3  # the run stopped cleanly before its end (budget, STOP file, a signal); resumable


def _fail(e: RsiError | str) -> None:
    err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def os_error(e: OSError) -> str:
    """What an OSError a command met means for the user: the file, the reason, what to do."""
    where = f"{e.filename}: " if e.filename else ""
    hint = {errno.EROFS: "the run directory is not writable (a read-only file system); copy the run somewhere "
                         "writable, or write the output elsewhere (--out)",
            errno.EACCES: "permission denied; check the file's owner and mode",
            errno.ENOSPC: "the disk is full; free space and try again (nothing recorded was lost)",
            errno.ENOTDIR: "a part of the path is a file, not a directory",
            errno.EISDIR: "it is a directory, not a file"}.get(e.errno, "")
    return f"{where}{e.strerror or e}" + (f": {hint}" if hint else "")


def _commands(fn):
    """Every command's errors as one line each, never a traceback: rsi's own errors, the OS's
    (a path, a permission, a full disk), and a second Ctrl-C or SIGTERM."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rsi.run.stopping import Interrupted, forced_signal

        forced_signal()  # forget one from an earlier in-process command
        try:
            return fn(*args, **kwargs)
        except RsiError as e:
            _fail(e)
        except OSError as e:
            _fail(os_error(e))
        except UnicodeDecodeError as e:  # a reader that did not say which file: still one line
            _fail(f"a file given to this command is not UTF-8 text ({e.reason} at byte {e.start})")
        except Interrupted as e:
            _interrupted(e.signum)
        except Exception:  # the aftermath of a second signal inside an import is still an interrupt
            if (signum := forced_signal()) is None:
                raise
            _interrupted(signum)

    return wrapper


def _interrupted(signum: int) -> None:
    name = signal.Signals(signum).name
    err.print(f"[bold yellow]interrupted:[/] {name}: stopped at once; the stage in progress was rolled back "
              "(`rsi resume` redoes it)", soft_wrap=True, highlight=False)
    raise typer.Exit(128 + signum) from None


def _warn(lines: list[str]) -> None:
    for line in lines:
        err.print(f"[bold red]{escape(line)}[/]", soft_wrap=True, highlight=False)


def _finish(go) -> None:
    """Run `go()` (which returns the run directory), write the report, say how the run ended."""
    from rsi.run.stopping import RunStopped
    from rsi.views.report import write_report

    try:
        out = go()
    except RunStopped as e:
        write_report(e.run_dir)
        err.print(f"[bold yellow]stopped:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
        raise typer.Exit(STOPPED_EXIT) from None
    report = write_report(out)
    console.print(f"run finished: {escape(str(out))}  report: {escape(str(report))}", highlight=False)


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
) -> None:
    """Continue a stopped or killed run from its last completed stage (exit status 3 if it stops again).

    Example: rsi resume runs/default-20261122-101500 --set budget.cpu_hours=4
    """
    from rsi.run.stopping import catch_signals

    with catch_signals():
        from rsi.loop import resume as resume_run

        _finish(lambda: resume_run(run_dir, console, set_ or [], allow_changed=allow_changed))


@app.command()
@_commands
def status(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Where a run stands: champion, frontier, accuracy, cost.

    Example: rsi status runs/quick-20261122-101500 --json
    """
    from rsi.views.status import format_status
    from rsi.views.status import status as get_status

    st = get_status(run_dir)
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        console.print(format_status(st))


@app.command()
@_commands
def review(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    approve: Annotated[bool, typer.Option("--approve", help="approve the waiting candidate's promotion")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="reject it: the run keeps its champion")] = False,
    why: Annotated[str, typer.Option("--why", help="the reason, recorded with the ruling")] = "",
    by: Annotated[str | None, typer.Option("--by", help="who decides (default: the login name)")] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="a vetoed cycle other than the latest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the candidate a run awaits approval for (gate.require_approval), or a promotion a
    monitor vetoed, and record a ruling.

    Without --approve/--reject it shows the candidate's accuracy against the champion's, the
    cycle's monitor readings and a sample of the new training data. For a waiting candidate
    `rsi resume RUN` then acts; approving a vetoed one overrules the monitor and makes it the
    champion at once.

    Example: rsi review runs/quick-20261122-101500 --approve --by alice --why "gains hold at d4-d5"
    """
    from rsi.stages.review import ReviewError, record, summary

    if approve and reject:
        raise ReviewError("pass one of --approve and --reject, not both")
    if approve or reject:
        done = record(run_dir, approve, why, by, cycle)
        if done["overrule"]:
            what = "overruled the veto: it is the champion now" if approve else "the rollback stands"
        else:
            what = f"continue with `rsi resume {run_dir}`"
        console.print(escape(f"recorded: {done['ruling']} {done['candidate']} (cycle {done['cycle']}) by "
                             f"{done['by']} ({done['why']}); {what}"), highlight=False)
        return
    st = summary(run_dir, cycle)
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        from rsi.views.status import format_review

        console.print(format_review(st))


@app.command()
@_commands
def add(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    file: Annotated[Path, typer.Argument(help='JSONL file: {"prompt": ..., "answer": ..., "difficulty": ...} a line')],
) -> None:
    """Add people's problems (with answers) to a run; they join its next cycle, marked `human`.

    Every row is checked first as the task would (the prompt's format and difficulty, the
    answer, the model's alphabet, no overlap with a held-out prompt); a bad one names its line and
    nothing is added. Rows the run already has are skipped. `rsi withdraw` takes them back.

    Example: rsi add runs/quick-20261122-101500 my_problems.jsonl
    """
    from rsi.run.human import add_problems

    cycle, made, known = add_problems(run_dir, file)
    skipped = f" ({known} rows the run already had were skipped)" if known else ""
    console.print(escape(f"added {len(made)} human problems to cycle {cycle} of {run_dir}{skipped}; they are "
                         f"answered when that cycle runs (`rsi resume {run_dir}`, with --set loop.cycles=N if the "
                         "run has finished)"), highlight=False)


@app.command()
@_commands
def withdraw(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    file: Annotated[Path | None, typer.Option("--file", help="withdraw only this file's rows")] = None,
    all_: Annotated[bool, typer.Option("--all", help="withdraw every human problem not used yet")] = False,
) -> None:
    """Take back problems added with `rsi add` that no stage has used yet (by mistake, say).

    Example: rsi withdraw runs/quick-20261122-101500 --file my_problems.jsonl
    """
    from rsi.run.human import withdraw_problems

    if (file is None) == (not all_):
        raise RsiError("pass --file FILE (that file's rows) or --all (every human problem not used yet), one of them")
    n, cycle = withdraw_problems(run_dir, file)
    console.print(escape(f"withdrew {n} human problems from cycle {cycle} of {run_dir}"), highlight=False)


@app.command()
@_commands
def report(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           out: Annotated[Path | None, typer.Option("--out", help="where to write (default RUN/report.html)")] = None,
           ) -> None:
    """Write RUN/report.html (or --out) with plots.

    Example: rsi report runs/quick-20261122-101500 --out /tmp/report.html
    """
    from rsi.views.report import write_report
    from rsi.views.status import corrupted, status

    st = status(run_dir)
    console.print(escape(f"wrote {write_report(run_dir, out, st)}"), highlight=False)
    _warn(corrupted(st))


@app.command()
@_commands
def export(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           out: Annotated[Path | None, typer.Option("--out", help="output JSONL file")] = None) -> None:
    """Write the accepted (self-produced and verified) training data as JSONL.

    Example: rsi export runs/quick-20261122-101500 --out accepted.jsonl
    """
    from rsi.engine.manifest import verify_all
    from rsi.run.rundir import MODELS
    from rsi.views.export import export as export_run
    from rsi.views.status import corrupted

    path, rows = export_run(run_dir, out)
    console.print(escape(f"wrote {rows} rows to {path}"), highlight=False)
    _warn(corrupted({"run_dir": str(run_dir), "checkpoints": verify_all(Path(run_dir) / MODELS)}))


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
