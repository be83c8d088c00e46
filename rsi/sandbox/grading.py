"""Grading model-written code on the host: the sandbox only ever sees inputs, never answers.

A function task runs `HARNESS` in the sandbox. The harness reads the candidate's source, the
entry point and the test *inputs* from stdin, runs the candidate with stdout redirected to
stderr, and prints one line: a per-run token followed by the JSON of every call's result.
The host parses that line and compares each value with the expected one it kept (`same`): strict
JSON equality (a bool is not an int), an integer exactly (a float stands for it only when it
equals it exactly: `float(2**60)` is not `2**60 + 1`), a tolerance of 1e-6 only where the expected
value is a float. So:

- an early `exit(0)` or a crash prints no result line: every test fails;
- an object whose `__eq__` always says yes is not JSON, so it fails where it is returned;
- patching the harness, `json` or `print` changes only what is printed, never what it is
  compared with, which the sandbox never had;
- results are read from the pipe alone, so a symlinked or forged output file is never read;
- the tests are not in the sandbox to be read.

A missing, truncated or malformed result line is a failure with the reason recorded. Grading is
total: whatever bytes a program prints, it returns a `Graded` and never raises. A result line is
read only up to `MAX_LINE` characters, `MAX_DEPTH` levels of nesting and `MAX_DIGITS` digits
an integer; anything past those caps scores 0 with the cap named. Reasons are valid UTF-8 of at
most `MAX_REASON` characters (`clean`), so the ledger can always store them.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from rsi.sandbox.limits import Execution

MAX_LINE = 1 << 20  # characters of a result line (the sandbox's output cap)
MAX_DEPTH = 64  # nesting of a result value
MAX_DIGITS = 1000  # digits of an integer in a result line
MAX_REASON = 300  # characters of a recorded reason


class _TooManyDigits(ValueError):
    pass


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise _TooManyDigits
    return int(digits)

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
    why there are none (killed, nothing printed, a malformed line). Never raises."""
    if ex.killed:
        return None, f"killed: {ex.killed}"
    results, why = _result_line(ex.stdout, token)
    if why == "missing":
        tail = ex.stderr.strip().splitlines()[-1:] or [f"exit status {ex.exit_code}"]
        return None, clean(f"no result printed ({tail[0][:200]})")
    if why:
        return None, why
    if not isinstance(results, list) or len(results) != n:
        return None, "result line does not have one entry per test"
    return results, ""


def grade_function(ex: Execution, token: str, expected: list[Any]) -> Graded:
    """Compare the harness's printed results with `expected` (one value per input). Never raises."""
    n = len(expected)
    results, why = function_results(ex, token, n)
    if results is None:
        return Graded(0, n, why)
    passed, first_bad = 0, None
    for i, (got, want) in enumerate(zip(results, expected, strict=True)):
        if isinstance(got, dict) and "value" in got and same(got["value"], want):
            passed += 1
        elif first_bad is None:
            raised = isinstance(got, dict) and "error" in got
            first_bad = f"test {i}: " + (f"raised {_short(got.get('error'))}" if raised else f"got {_short(got)}")
    return Graded(passed, n, "all tests pass" if passed == n else clean(f"{passed}/{n} pass; {first_bad}"))


def _result_line(stdout: str, token: str) -> tuple[Any, str]:
    """(parsed value, "") of the last line that starts with `token`, or (None, why): "missing" when
    there is none, else which cap or rule the line breaks."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(token)), None)
    if line is None:
        return None, "missing"
    body = line[len(token):]
    if len(body) > MAX_LINE:
        return None, f"malformed result line: longer than {MAX_LINE} characters"
    try:
        value = json.loads(body, parse_int=_parse_int)
    except _TooManyDigits:
        return None, f"malformed result line: an integer of more than {MAX_DIGITS} digits"
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        return None, clean(f"malformed result line: {type(e).__name__}")
    if _depth(value) > MAX_DEPTH:
        return None, f"malformed result line: nested more than {MAX_DEPTH} levels deep"
    return value, ""


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: the value may be deep)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, list | dict):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def same(got: Any, want: Any) -> bool:
    """Strict equality of JSON values: types must match (bool is not int); an expected integer is
    matched exactly (an int, or a float that equals it exactly), an expected float to 1e-6. Never
    raises on what a program returned."""
    want = json.loads(json.dumps(want))  # tuples -> lists, as the candidate's values arrive
    try:
        return _same(got, want, 0)
    except (RecursionError, OverflowError, ValueError, TypeError):
        return False


def _same(a: Any, b: Any, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(b, int):
        return type(a) in (int, float) and a == b  # int == float is exact in Python
    if isinstance(b, float):
        return type(a) in (int, float) and _close(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], depth + 1) for k in a)
    return type(a) is type(b) and a == b


def _close(a: int | float, b: float) -> bool:
    try:
        a = float(a)
    except OverflowError:  # an integer beyond any float
        return False
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def clean(text: str, limit: int = MAX_REASON) -> str:
    """`text` as valid UTF-8 (a lone surrogate becomes "?"), cut to `limit` characters."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError, TypeError):
        return "an unprintable value"
    return clean(text, limit)
