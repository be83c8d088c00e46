"""Who may do what in the console, and which runs it may touch.

- Bound to a loopback address, anyone on this machine may read; bound to any other address every
  request needs the token. Writing always needs it, with a CSRF value on every form, and never
  happens with `--read-only`.
- The token comes from `RSI_CONSOLE_TOKEN` or is made at start and printed in the console's URL.
  A browser presents it once as `?token=...`; the console then keeps it in a cookie (HttpOnly,
  SameSite=Strict) and redirects to the same page without it. Scripts may send
  `Authorization: Bearer <token>` instead.
- A run is named by its directory's name under the runs directory, and only such a name is
  accepted: no separator, no `..`, and the resolved directory (symlinks followed) must sit
  directly in the runs directory, so no path outside it is ever read or written.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from pathlib import Path

from rsi.errors import RsiError
from rsi.run.rundir import LEDGER

TOKEN_ENV = "RSI_CONSOLE_TOKEN"
COOKIE = "rsi_console"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class Refused(RsiError):
    """A request the console does not serve: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """The console's access rules for one server (see the module docstring)."""

    def __init__(self, runs_dir: Path, host: str, read_only: bool = False, token: str | None = None) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.read_only = read_only
        self.open_reads = is_loopback(host)
        self.token = token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
        self.csrf = hmac.new(self.token.encode(), b"rsi-console-csrf", hashlib.sha256).hexdigest()

    def holds_token(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.token.encode())

    def check_read(self, presented: str | None) -> None:
        if not self.open_reads and not self.holds_token(presented):
            raise Refused(401, "this console is bound to a non-loopback address: open it with the URL it printed "
                               "at start (…?token=…), or send 'Authorization: Bearer <token>'")

    def check_write(self, presented: str | None, csrf: str | None) -> None:
        if self.read_only:
            raise Refused(403, "this console was started with --read-only: it records nothing")
        if not self.holds_token(presented):
            raise Refused(401, "recording needs the console's token: open the console with the URL it printed at "
                               "start (…?token=…)")
        if not csrf or not hmac.compare_digest(csrf.encode(), self.csrf.encode()):
            raise Refused(403, "the form's CSRF value is missing or wrong: reload the page and submit it again")

    def run_dir(self, name: str) -> Path:
        """The run directory called `name` in the runs directory; Refused (404) for anything else."""
        if not RUN_NAME.fullmatch(name or ""):
            raise Refused(404, f"{name!r} is not a run name: a run is a directory directly in {self.runs_dir}")
        path = self.runs_dir / name
        real = path.resolve()
        if real.parent != self.runs_dir or not (real / LEDGER).is_file() or (real / LEDGER).is_symlink():
            raise Refused(404, f"no run {name!r} in {self.runs_dir}")
        return real

    def runs(self) -> list[str]:
        """The names of the run directories in the runs directory, newest first."""
        found = []
        for path in self.runs_dir.iterdir():
            try:
                self.run_dir(path.name)
            except Refused:
                continue
            found.append((path.stat().st_mtime, path.name))
        return [name for _, name in sorted(found, reverse=True)]
