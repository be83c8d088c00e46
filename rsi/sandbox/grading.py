"""Grading model-written code on the host: the sandbox only ever sees inputs, never answers.

A function task runs `HARNESS` in the sandbox. The harness reads the candidate's source, the
entry point and the test *inputs* from stdin, runs the candidate with stdout redirected to
stderr, and prints one line: a per-run token followed by the JSON of every call's result.
The host parses that line and compares each value with the expected one it kept; strict JSON
equality (a bool is not an int), floats to 1e-6. So:

- an early `exit(0)` or a crash prints no result line: every test fails;
- an object whose `__eq__` always says yes is not JSON, so it fails where it is returned;
- patching the harness, `json` or `print` changes only what is printed, never what it is
  compared with, which the sandbox never had;
- results are read from the pipe alone, so a symlinked or forged output file is never read;
- the tests are not in the sandbox to be read.

A missing, truncated or malformed result line is a failure with the reason recorded.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from rsi.sandbox.limits import Execution

HARNESS = r'''
import json, sys
_job = json.loads(sys.stdin.read())
_out, sys.stdout = sys.stdout, sys.stderr  # the candidate's own prints go to stderr
_ns = {"__name__": "solution"}
exec(compile(_job["source"], "solution.py", "exec"), _ns)
_fn = _ns[_job["entry_point"]]
_results = []
for _args in _job["inputs"]:
    try:
        _value = _fn(*_args)
        json.dumps(_value)
        _results.append({"value": _value})
    except BaseException as _e:
        _results.append({"error": type(_e).__name__})
_out.write(_job["token"] + json.dumps(_results) + "\n")
_out.flush()
'''


@dataclass(frozen=True)
class Graded:
    """Result of grading one candidate against hidden expected values."""

    passed: int
    total: int
    reason: str

    @property
    def correct(self) -> bool:
        return self.total > 0 and self.passed == self.total


def function_job(source: str, entry_point: str, inputs: list[list[Any]]) -> tuple[str, str]:
    """(stdin, token) for running `source`'s `entry_point` on `inputs` under HARNESS."""
    token = "@@rsi-" + secrets.token_hex(8) + "@@"
    return json.dumps({"source": source, "entry_point": entry_point, "inputs": inputs, "token": token}), token


def function_results(ex: Execution, token: str, n: int) -> tuple[list[Any] | None, str]:
    """The harness's `n` per-input results ({"value": v} or {"error": name}) from `ex`, or None and
    why there are none (killed, nothing printed, a malformed line)."""
    if ex.killed:
        return None, f"killed: {ex.killed}"
    results = _result_line(ex.stdout, token)
    if results is None:
        tail = ex.stderr.strip().splitlines()[-1:] or [f"exit status {ex.exit_code}"]
        return None, f"no result printed ({tail[0][:200]})"
    if not isinstance(results, list) or len(results) != n:
        return None, "result line does not have one entry per test"
    return results, ""


def grade_function(ex: Execution, token: str, expected: list[Any]) -> Graded:
    """Compare the harness's printed results with `expected` (one value per input)."""
    n = len(expected)
    results, why = function_results(ex, token, n)
    if results is None:
        return Graded(0, n, why)
    passed, first_bad = 0, None
    for i, (got, want) in enumerate(zip(results, expected, strict=True)):
        if isinstance(got, dict) and "value" in got and same(got["value"], want):
            passed += 1
        elif first_bad is None:
            first_bad = f"test {i}: " + (f"raised {got.get('error')}" if isinstance(got, dict) and "error" in got
                                         else f"got {_short(got)}")
    return Graded(passed, n, "all tests pass" if passed == n else f"{passed}/{n} pass; {first_bad}")


def _result_line(stdout: str, token: str) -> Any:
    for line in reversed(stdout.splitlines()):
        if line.startswith(token):
            try:
                return json.loads(line[len(token):])
            except json.JSONDecodeError:
                return None
    return None


def same(got: Any, want: Any) -> bool:
    """Strict equality of JSON values: types must match (bool is not int); floats to 1e-6."""
    want = json.loads(json.dumps(want))  # tuples -> lists, as the candidate's values arrive
    return _same(got, want)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."
