"""The `rsi` command line's common parts: the typer app, the consoles, and how every command
reports an error (`commands`: one line, never a traceback) and ends a run (`finish`).

Every command's errors are one line (`_commands`): what went wrong, where, what to do; never a
traceback. Text from users and files is escaped before Rich prints it.
"""

from __future__ import annotations

import errno
import functools
import json
import signal

import typer
from rich.console import Console
from rich.markup import escape

from rsi.errors import RsiError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Recursive self-improvement loops for language models.")
# Lines are not wrapped at the console's width (80 when the output is not a terminal): a path or a
# command to copy stays whole; tables keep their own layout.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


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


def show(found: dict, as_json: bool, render) -> None:
    """Print a command's result: JSON on stdout with --json, else `render(found)` through rich."""
    if as_json:
        print(json.dumps(found, indent=1))
    else:
        console.print(render(found))
