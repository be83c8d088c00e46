"""Verification that never stops a run: a verifier that raises scores that sample 0.

`verify_guarded(task, pairs)` returns one `Verdict` per pair whatever the task's verifier does. It
asks for the whole batch first (code tasks run it in parallel); if that raises, or returns
something other than one verdict per pair, it asks pair by pair, and a pair whose verification
still raises gets `Verdict(0.0, False, "verifier error: <what it raised>", error=True)`. The
sandbox being unavailable is not a sample's fault and still stops the run (`SandboxUnavailable`),
as do KeyboardInterrupt and SystemExit.

`GuardedTask` wraps a task for a stage: its `verify` and `verify_many` are guarded and count the
samples they raised on (`errors`, each (problem, completion) once however often the stage
verifies it: the label stage's labeler and its audit both do; `first_error`), which the stage
records in its metrics and the `verifier` monitor reads (`rsi.monitors.checks.verifier`);
everything else is the task's own.

Example:
    >>> from rsi.tasks import get_task, problem
    >>> task = GuardedTask(get_task("addition"))
    >>> task.verify(problem(task, 2, "train", 0), "12").error, task.errors
    (False, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rsi.errors import SandboxUnavailable
from rsi.records import Problem, Verdict
from rsi.sandbox.grading import clean

PREFIX = "verifier error"


def verify_guarded(task, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
    """The task's verdicts on `pairs`, one each; a pair its verifier raises on scores 0 (see above)."""
    pairs = list(pairs)
    if not pairs:
        return []
    try:
        out = task.verify_many(pairs)
        if isinstance(out, list) and len(out) == len(pairs) and all(isinstance(v, Verdict) for v in out):
            return [_cleaned(v) for v in out]
        if len(pairs) == 1:
            return [_error(TypeError(f"verify_many returned {type(out).__name__}, not one Verdict"))]
    except (SandboxUnavailable, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        if len(pairs) == 1:
            return [_error(e)]
    return [v for pair in pairs for v in verify_guarded(task, [pair])]


def _error(e: BaseException) -> Verdict:
    return Verdict(0.0, False, clean(f"{PREFIX}: {type(e).__name__}: {e}"), error=True)


def _cleaned(v: Verdict) -> Verdict:
    reason = clean(v.reason) if isinstance(v.reason, str) else clean(repr(v.reason))
    return v if reason == v.reason else Verdict(v.reward, v.correct, reason, v.error)


class GuardedTask:
    """A task whose verifier never raises, counting the samples it scored 0 for raising."""

    def __init__(self, task, verify: Callable | None = None) -> None:
        """`verify(task, pairs)` runs the guarded verification (default `verify_guarded` here; a
        stage passes its pool's, `rsi.scale`, to share it among workers)."""
        self.task = task
        self._verify = verify or verify_guarded
        self._failed: set[tuple[str, str]] = set()
        self.first_error = ""

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def verify(self, problem: Problem, completion: str) -> Verdict:
        return self.verify_many([(problem, completion)])[0]

    def verify_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Verdict]:
        out = self._verify(self.task, pairs)
        for (problem, completion), v in zip(pairs, out, strict=True):
            if v.error:
                self._failed.add((problem.id, completion))
                self.first_error = self.first_error or v.reason
        return out

    @property
    def errors(self) -> int:
        """Distinct samples the verifier raised on."""
        return len(self._failed)

    def metrics(self) -> dict:
        """What a stage records: {"verifier_errors": n, "first_verifier_error": reason} when n > 0, else {}."""
        return {"verifier_errors": self.errors, "first_verifier_error": self.first_error} if self.errors else {}
