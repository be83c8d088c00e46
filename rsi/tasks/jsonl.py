"""Question/answer rows from a local JSONL file, answers checked by `math-verify`: task `jsonl:<path>`.

Each line is an object with `question` (text) and `answer` (text or number, the reference),
and optionally `difficulty` (an integer >= 1, default 1). A row belongs to the held-out split
when the first byte of the sha256 of its question is below 256 * HELDOUT_FRACTION, so the
split is fixed by content, disjoint, and stable when rows are added; item i of a split at a
difficulty is row i modulo that split's rows there.

The prompt is the question followed by the R1 instructions. The verifier compares the last
`<answer>` tag (else the whole completion) with the reference using math-verify, run in a
worker process with an external time limit (`rsi.tasks.mathcheck`), so a hostile answer cannot hang
the loop: it scores 0 with the reason recorded.

Example (a two-row file):
    >>> import json, tempfile
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    >>> _ = f.write(json.dumps({"question": "1/2 + 1/4?", "answer": "3/4"}) + "\\n"); f.close()
    >>> task = JsonlTask(f.name)
    >>> task.min_difficulty, task.max_difficulty
    (1, 1)
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path

from rsi.errors import ConfigError
from rsi.records import Problem, Verdict
from rsi.tasks.base import R1_INSTRUCTIONS, Task, has_answer_tag
from rsi.tasks.mathcheck import MathChecker

HELDOUT_FRACTION = 0.2
ANSWER_BUDGET = 256  # tokens of reasoning and answer per completion


class TaskFileError(ConfigError):
    """A task file is missing or has a bad row (the message names file, line and key)."""


class JsonlTask(Task):
    description = "questions and reference answers from a local JSONL file, checked with math-verify"
    difficulty_meaning = "the rows' 'difficulty' field (default 1)"
    alphabet = string.printable
    costly_verifier = True  # math-verify in a worker process
    pooled = True

    def __init__(self, path: str | Path, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{path}"
        self.checker = MathChecker(timeout_s)
        self.rows: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for q, a, d in _read(self.path):
            split = "heldout" if hashlib.sha256(q.encode()).digest()[0] < 256 * HELDOUT_FRACTION else "train"
            self.rows.setdefault((split, d), []).append((q, a))
        difficulties = sorted({d for _, d in self.rows})
        self.min_difficulty, self.max_difficulty = difficulties[0], difficulties[-1]

    def generate(self, rng, difficulty):  # items come from rows, see `make`
        raise NotImplementedError("jsonl tasks draw rows by index; use rsi.tasks.problem()")

    def make(self, split: str, difficulty: int, seed: int) -> tuple[str, str]:
        question, answer = pick_row(self.path, self.rows, split, difficulty, seed, "question")
        return f"{question}\n\n{R1_INSTRUCTIONS}", answer

    def max_answer_chars(self, difficulty: int) -> int:
        return ANSWER_BUDGET

    def verify(self, problem: Problem, completion: str) -> Verdict:
        ok, reason = self.checker.check(problem.answer, self.answer(completion))
        return Verdict(reward=float(ok), correct=ok, reason=reason)

    def well_formed(self, problem: Problem, completion: str) -> bool:
        return has_answer_tag(completion) and bool(self.answer(completion).strip())


def pick_row(path: Path, rows: dict, split: str, difficulty: int, seed: int, key: str):
    """Row `seed` (modulo their number) of a file's rows in (split, difficulty); TaskFileError if none."""
    pool = rows.get((split, difficulty))
    if not pool:
        raise TaskFileError(f"{path} has no {split} rows at difficulty {difficulty} (a row is held out when its "
                            f"{key} hashes into the first {HELDOUT_FRACTION:.0%}). Add rows there, or set "
                            "seed_data/eval difficulties to ones the file has.")
    return pool[(seed % 1_000_000_000) % len(pool)]


MAX_REPORTED = 20  # bad rows listed in one error; the rest are counted


def json_rows(path: Path, shape: str, parse, default_difficulty: int | None = 1) -> list:
    """`parse(where, row, difficulty)` of every non-blank line of a JSONL file, in order (`where` is
    "file:line"; a row without 'difficulty' gets `default_difficulty`, None: the caller decides).
    Every bad row is found before anything is used: lines that are not UTF-8 JSON objects with a
    valid difficulty, and rows `parse` refuses by raising TaskFileError. One TaskFileError then names
    them all (the first `MAX_REPORTED`, and how many more). `shape` tells the user what a line should
    hold. TaskFileError too when the file is missing or has no rows."""
    if not path.is_file():
        raise TaskFileError(f"task file {path} does not exist. Give the path of a JSONL file with one {shape} "
                            "per line.")
    found, bad = [], []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                row, d = _object(where, raw, shape, default_difficulty)
                if row is not None:
                    found.append(parse(where, row, d))
            except TaskFileError as e:
                bad.append(str(e))
    if bad:
        shown = "\n  ".join(bad[:MAX_REPORTED])
        more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise TaskFileError(bad[0] if len(bad) == 1 else
                            f"{path}: {len(bad)} bad rows; nothing was read. Fix them and run again:\n  {shown}{more}")
    if not found:
        raise TaskFileError(f"task file {path} has no rows.")
    return found


def _object(where: str, raw: bytes, shape: str, default_difficulty: int | None) -> tuple[dict | None, int | None]:
    """One line's JSON object and difficulty ((None, None) for a blank line); TaskFileError if it is not one."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{where}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                            f"the file must be JSONL, one {shape} per line.") from None
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno}). "
                            "Each line must be one JSON object.") from None
    if not isinstance(row, dict):
        raise TaskFileError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    d = row.get("difficulty", default_difficulty)
    if "difficulty" in row and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
        raise TaskFileError(f"{where}: key 'difficulty' must be an integer >= 1 (got {d!r}).")
    return row, d


class OneAnswer:
    """Refuses a row whose question an earlier row of the file gave another answer (which of the two
    is right, only the file's author can say). Called once per row, in order."""

    def __init__(self, key: str) -> None:
        self.key, self.seen = key, {}

    def __call__(self, where: str, question: str, answer: str) -> None:
        first = self.seen.setdefault(question, (where, answer))
        if first[1] != answer:
            raise TaskFileError(f"{where}: key '{self.key}' repeats the one at {first[0]} with another answer "
                                f"({answer!r} here, {first[1]!r} there); keep the row whose answer is right.")


def _read(path: Path) -> list[tuple[str, str, int]]:
    """(question, answer, difficulty) per row; TaskFileError naming every bad row's file:line."""
    one_answer = OneAnswer("question")

    def parse(where: str, row: dict, d: int) -> tuple[str, str, int]:
        q, a = row.get("question"), row.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise TaskFileError(f"{where}: key 'question' must be non-empty text (got {q!r}).")
        if isinstance(a, bool) or not isinstance(a, str | int | float) or not str(a).strip():
            raise TaskFileError(f"{where}: key 'answer' must be non-empty text or a number (got {a!r}).")
        one_answer(where, q, str(a))
        return q, str(a), d

    return json_rows(path, '{"question": ..., "answer": ...} object', parse)
