"""`rsi serve` and `rsi stop`: the web console, and a stop asked from a terminal."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rsi.cli.base import _commands, app, console
from rsi.errors import RsiError


@app.command()
@_commands
def serve(
    runs_dir: Annotated[Path, typer.Argument(help="the directory holding run directories")] = Path("runs"),
    host: Annotated[str, typer.Option("--host", help="address to bind; not loopback: every request needs the token")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8765,
    read_only: Annotated[bool, typer.Option("--read-only", help="show runs, record nothing")] = False,
) -> None:
    """A local web console for the runs under RUNS_DIR: watch them live, review promotions, label
    what the vote could not, add problems, stop a run.

    It prints its URL with an access token (or takes it from RSI_CONSOLE_TOKEN); recording needs
    the token always, reading only when bound to an address other than loopback.

    Example: rsi serve runs --port 8765
    """
    from rsi.console.guard import Guard, is_loopback

    if not runs_dir.is_dir():
        raise RsiError(f"runs directory {runs_dir} does not exist; pass the directory your runs are in "
                       "(`rsi run --run-dir DIR/NAME` puts a run in DIR)")
    try:
        import uvicorn

        from rsi.console import create_app
    except ImportError as e:
        raise RsiError(f"the console needs FastAPI, Jinja2 and uvicorn ({e}); install them with "
                       "pip install 'rsi[serve]'") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise RsiError(f"cannot listen on {host}:{port} ({e.strerror}): another program uses the port, or the "
                           "address is not this machine's; choose another with --port or --host") from None
    local = is_loopback(host)
    names = ["127.0.0.1", "localhost", "::1", "[::1]", host] if local else None
    application = create_app(runs_dir, host, read_only, allowed_hosts=names)
    guard: Guard = application.state.guard
    shown = f"[{host}]" if ":" in host else host
    console.print(escape(f"rsi console for {runs_dir.resolve()} at http://{shown}:{port}/?token={guard.token}"),
                  highlight=False, soft_wrap=True)
    console.print("reading needs the token too (not bound to loopback)" if not local else
                  "anyone on this machine can read; recording needs the token (open the URL above)" if not read_only
                  else "read-only: nothing can be recorded", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
@_commands
def stop(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    by: Annotated[str | None, typer.Option("--by", help="who asks (default: the login name)")] = None,
) -> None:
    """Ask a running run to stop before its next stage (writes RUN/STOP); `rsi resume` goes on.

    Example: rsi stop runs/quick-20261122-101500
    """
    import getpass

    from rsi.run.rundir import LEDGER
    from rsi.run.stopping import request_stop

    if not (run_dir / LEDGER).is_file():
        raise RsiError(f"{run_dir} is not an rsi run directory (no {LEDGER})")
    path = request_stop(run_dir, by or getpass.getuser())
    console.print(escape(f"wrote {path}: the run stops before its next stage"), highlight=False)
