"""Mathematical answer checking with `math-verify`, in a worker process the loop can kill.

`math_verify.parse` and `verify` run sympy on text the model wrote; a hostile or unlucky answer
(a huge power tower, a pathological expression) can take unbounded time, and their own timeouts
rely on signals that do not fire inside every C call. So every check runs in one long-lived
worker process and the caller waits at most `timeout_s`: on time-out the worker's whole process
is killed (SIGKILL), the answer counts as wrong with the reason recorded, and the next check
starts a fresh worker. A crashed worker is treated the same way.

Example:
    >>> checker = MathChecker(timeout_s=10)
    >>> checker.check("\\\\frac{1}{2}", "0.5")
    (True, 'equivalent')
    >>> checker.close()
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection


def _parse(text: str):
    from math_verify import parse

    found = parse(text, parsing_timeout=None)
    return found or parse(f"${text}$", parsing_timeout=None)


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    from math_verify import verify

    while True:
        try:
            gold, answer = conn.recv()
        except EOFError:
            return
        try:
            g, a = _parse(gold), _parse(answer)
            if not g:
                result = (False, f"the reference answer {gold!r} does not parse")
            elif not a:
                result = (False, "the answer does not parse as mathematics")
            else:
                ok = verify(g, a, timeout_seconds=None)
                result = (bool(ok), "equivalent" if ok else f"not equivalent to {gold!r}")
        except Exception as e:  # math-verify raising on one answer must not end the worker
            result = (False, f"math-verify raised {type(e).__name__}: {e}")
        conn.send(result)


class MathChecker:
    """Checks (reference, answer) pairs for mathematical equivalence under an external time limit."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.timeouts = 0  # answers that hit the limit (their worker was killed)
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def check(self, gold: str, answer: str) -> tuple[bool, str]:
        """(equivalent, reason). Never takes much longer than `timeout_s`, never raises on bad answers."""
        conn = self._worker()
        conn.send((gold, answer))
        if conn.poll(self.timeout_s):
            try:
                return conn.recv()
            except EOFError:
                self._kill()
                return False, "math-verify's worker died on this answer"
        self._kill()
        self.timeouts += 1
        return False, f"math-verify took longer than {self.timeout_s:g} s (worker killed)"

    def _worker(self) -> Connection:
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            ctx = mp.get_context("spawn")  # a clean interpreter: no torch threads or locks inherited
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="rsi-mathcheck")
            self._proc.start()
            child.close()
        return self._conn  # type: ignore[return-value]

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        self._kill()

    def __del__(self) -> None:
        try:
            self._kill()
        except Exception:
            pass
