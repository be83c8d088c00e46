"""Self-play for code tasks: the model writes its own problems and a trusted executor keeps the valid ones.

With `propose.by: model` the propose stage asks the champion for new `code_io` problems instead of
drawing them from the task's generator. A proposal answers the proposer prompt (`propose.prompt`,
by default "#propose {difficulty}\\n") with a program and an input on its last line:

    def f(x):
     y = x
     y = y * 3
     return y
    #f(4)

`check` keeps a proposal only if it
1. parses (`parse`): a `def f(x):` function, then `f(<integer>)` (a completion cut off by its
   token budget is judged on what it holds);
2. uses only characters the solver can read (`alphabet`: the tiny model's character set);
3. is a pure integer function of x (`rsi.tasks.programs.impurity`, an allow-list of syntax): one
   `def f(x):` using assignments, `if`/`for`/`while`, integer arithmetic, comparisons, boolean
   logic, tuples, its own variables and the builtins range, abs, min, max, divmod, pow, int and
   bool. No imports, attributes, strings, floats, subscripts, comprehensions, lambdas or other
   names: nothing that can read a clock, a file, /proc, randomness or a hash seed;
4. is new: its (program, input) is neither an earlier problem of the run nor a held-out
   evaluation problem (`contaminated`);
5. runs in the sandbox twice, each time within the limits, returning the same integer both times
   (|y| < 10**12).

Each kept proposal becomes one problem per mode the task can pose from it (`pose`: deduction
asks for f(x), abduction for an input giving y), with `source` = the proposing checkpoint. The
solver then answers them (stage generate), the answers are verified (stage label), and each
proposal earns its learnability (`learnability`): 1 - the solver's solve rate over its problems'
samples, or 0 when they were never solved; an invalid proposal earns 0. A problem always
solved or never solved teaches nothing; one solved sometimes sits at the edge of the solver's
ability, where the proposer is pushed to write more.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rsi.records import Label, Problem, Proposal
from rsi.tasks.base import answer_text
from rsi.tasks.programs import impurity, random_input, random_program

DEFAULT_PROMPT = "#propose {difficulty}\n"
MAX_VALUE = 10**12  # bound on a proposal's input and output, so answers stay short
MAX_SOURCE = 4000  # characters
_FENCE = re.compile(r"```[a-zA-Z]*\n?")
_CALL = re.compile(r"\bf\((-?\d{1,13})\)")


@dataclass(frozen=True)
class Checked:
    """The executor's judgement of one proposal; source, x and y are set when it is valid."""

    valid: bool
    reason: str
    source: str = ""
    x: int = 0
    y: int = 0


def proposer_prompt(template: str, difficulty: int) -> str:
    return template.format(difficulty=difficulty)


def proposer_example(rng: random.Random, difficulty: int) -> str:
    """A well-formed proposal drawn from rsi's program generator (seed data that teaches the format)."""
    return f"{random_program(rng, difficulty)}\n#f({random_input(rng, difficulty)})"


def parse(completion: str) -> tuple[str, int] | str:
    """(program, input) of a proposal, or why it does not parse. The program is `def f(x):` and
    the indented lines after it; the input is the first `f(<integer>)` after the program (the
    tiny model writes `#f(4)`; a chat model may write `print(f(4))` in a code fence)."""
    text = _FENCE.sub("", answer_text(completion))
    start = text.find("def f(x):")
    if start < 0:
        return "malformed: no `def f(x):` function"
    lines = text[start:].splitlines()
    end = next((i for i in range(1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()), len(lines))
    source = "\n".join(line.rstrip() for line in lines[:end] if line.strip())
    found = _CALL.search("\n".join(lines[end:]))
    if found is None:
        return "malformed: no input `f(<integer>)` after the function"
    x = int(found.group(1))
    if "return" not in source:
        return "malformed: the function has no return statement"
    if len(source) > MAX_SOURCE:
        return f"too large: program longer than {MAX_SOURCE} characters"
    if abs(x) >= MAX_VALUE:
        return f"too large: input {x} is not below {MAX_VALUE:.0e} in size"
    return source, x


def check(completions: Sequence[str], seen: set[tuple[str, int]],
          heldout: set[tuple[str, int]], alphabet: str | None, sandbox) -> list[Checked]:
    """Judge each proposal (see the module docstring). `seen` and `heldout` hold the (program,
    input) pairs of earlier and of held-out problems; pairs kept here are added to `seen`, so a
    batch has no duplicates either. Every reason starts with its category (`kept`, `malformed`,
    `contaminated`, ...) and a colon."""
    from rsi.sandbox.grading import HARNESS, clean, function_job
    from rsi.sandbox.pool import Job
    from rsi.tasks.guard import PREFIX as VERIFIER_ERROR

    out: list[Checked | None] = [None] * len(completions)
    todo: list[tuple[int, str, int]] = []
    batch: set[tuple[str, int]] = set()
    for i, text in enumerate(completions):
        parsed = parse(text)
        if isinstance(parsed, str):
            out[i] = Checked(False, parsed)
            continue
        source, x = parsed
        bad = sorted(set(source) - set(alphabet)) if alphabet is not None else []
        if bad:
            out[i] = Checked(False, f"unreadable: characters outside the solver's alphabet: {''.join(bad)!r}"[:200])
        elif why := impurity(source):
            unparsed = why.startswith("does not parse")
            out[i] = Checked(False, f"malformed: the program {why}" if unparsed else f"impure: {why}")
        elif (source, x) in heldout:
            out[i] = Checked(False, "contaminated: the same program and input as a held-out evaluation problem")
        elif (source, x) in seen or (source, x) in batch:
            out[i] = Checked(False, "duplicate: the same program and input as an earlier problem")
        else:
            batch.add((source, x))
            todo.append((i, source, x))
    jobs, tokens = [], []
    for _, source, x in todo:
        for _run in range(2):
            stdin, token = function_job(source, "f", [[x]])
            jobs.append(Job(HARNESS, stdin))
            tokens.append(token)
    runs = sandbox.map(jobs)
    for k, (i, source, x) in enumerate(todo):
        try:
            values = [_value(runs[2 * k + r], tokens[2 * k + r]) for r in range(2)]
        except Exception as e:
            values = [clean(f"{VERIFIER_ERROR}: {type(e).__name__}: {e}")]
        reason = next((v for v in values if isinstance(v, str)), None)
        if reason is None and values[0] != values[1]:
            reason = f"not deterministic: f({x}) gave {values[0]}, then {values[1]}"
        if reason is None:
            seen.add((source, x))
            out[i] = Checked(True, f"kept: f({x}) = {values[0]}", source, x, values[0])  # type: ignore[arg-type]
        else:
            out[i] = Checked(False, reason)
    return out  # type: ignore[return-value]


def _value(ex, token: str) -> int | str:
    """f(x) from one harness run, or why it is not a usable answer (its category first)."""
    from rsi.sandbox.grading import clean, function_results

    if ex.killed:
        return f"over the limits: killed ({ex.killed})"
    results, why = function_results(ex, token, 1)
    if results is None:
        return f"does not run: {why}"
    got = results[0]
    if not isinstance(got, dict) or "value" not in got:
        return clean(f"raises: {got.get('error') if isinstance(got, dict) else got!r}", 200)
    y = got["value"]
    if type(y) is not int:
        return f"not an integer: f returned a {type(y).__name__}"
    if abs(y) >= MAX_VALUE:
        return f"too large: f returned {str(y)[:20]}..., not below {MAX_VALUE:.0e} in size"
    return y


def solve_rates(problems: Iterable[Problem], labels: Iterable[Label]) -> dict[str, float]:
    """Per problem id, the share of its samples that were correct (the verifier's audit)."""
    ids = {p.id for p in problems}
    tally: dict[str, list[int]] = {}
    for lab in labels:
        if lab.problem_id in ids and lab.audit_correct is not None:
            tally.setdefault(lab.problem_id, []).append(int(lab.audit_correct))
    return {pid: sum(v) / len(v) for pid, v in tally.items()}


def learnability(rate: float | None) -> float:
    """The proposer's reward for a problem solved at `rate`: 1 - rate, but 0 when never solved."""
    return 0.0 if not rate else 1.0 - rate


def proposal_rewards(proposals: Sequence[Proposal], rates: dict[str, float]) -> list[float]:
    """Learnability of each proposal: over the samples of all its problems; 0 when invalid."""
    out = []
    for q in proposals:
        known = [rates[pid] for pid in q.problem_ids if pid in rates]
        out.append(learnability(sum(known) / len(known)) if q.valid and known else 0.0)
    return out
