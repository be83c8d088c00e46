"""Problems people add to a run (`rsi add RUN FILE`), kept apart from generated ones.

FILE is JSONL, one object a line: `prompt` (the problem as the task poses it, e.g. `s:4312=` for
`sort`), `answer` (its reference answer, which the task's verifier checks the model's answers
against) and optionally `difficulty` (an integer in the task's range, default 1).

Every row is checked before anything is written: a bad line, a difficulty outside the task's
range or a prompt that overlaps a held-out evaluation prompt (the run's decontamination) is an
error naming the file, line and key, and nothing is added. The rows become problems with split
and source `human` (ids `<task>/human/<difficulty>/<n>`), in the first cycle whose generate stage
has not run yet: the champion answers them with that cycle's generated problems, the labeler
checks the answers, and what it keeps trains the candidate with origin `human` (also in
`rsi export`). Add them while the run is stopped (or before its next cycle starts).

    rsi add runs/quick-20261123-101500 my_problems.jsonl
"""

from __future__ import annotations

from pathlib import Path

from rsi.config import resumed_config
from rsi.context import heldout_index
from rsi.ledger import Ledger
from rsi.monitors import HeldoutIndex
from rsi.records import Problem
from rsi.tasks import get_task
from rsi.tasks.jsonl import TaskFileError, json_objects

HUMAN = "human"


def read_rows(path: Path, task, index: HeldoutIndex) -> list[tuple[str, str, int]]:
    """(prompt, answer, difficulty) per row; TaskFileError naming file, line and key on the first bad one."""
    rows = []
    for where, row, d in json_objects(Path(path), '{"prompt": ..., "answer": ...} object'):
        unknown = sorted(set(row) - {"prompt", "answer", "difficulty"})
        if unknown:
            raise TaskFileError(f"{where}: unknown key {unknown[0]!r}; a row has 'prompt', 'answer' and optionally "
                                "'difficulty'.")
        prompt, answer = row.get("prompt"), row.get("answer")
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskFileError(f"{where}: key 'prompt' must be non-empty text (got {prompt!r}).")
        if isinstance(answer, bool) or not isinstance(answer, str | int) or not str(answer).strip():
            raise TaskFileError(f"{where}: key 'answer' must be non-empty text or an integer (got {answer!r}).")
        if not task.min_difficulty <= d <= task.max_difficulty:
            raise TaskFileError(f"{where}: key 'difficulty' must be in task {task.name!r}'s range "
                                f"{task.min_difficulty}..{task.max_difficulty} (got {d}).")
        hit = index.hit(prompt)
        if hit:
            raise TaskFileError(f"{where}: key 'prompt' overlaps a held-out evaluation prompt ({hit} match), so "
                                "training on it would contaminate the evaluation; remove or change the row.")
        rows.append((prompt, str(answer).strip(), d))
    return rows


def add_problems(run_dir: Path, path: Path) -> tuple[int, list[Problem]]:
    """Add the file's problems to the run; returns (the cycle they join, the problems)."""
    from rsi.loop import LEDGER

    with Ledger(Path(run_dir) / LEDGER, create=False) as ledger:
        info = ledger.run_info()
        cfg = resumed_config(info["config"], ledger.resume_overrides(), f"the config of run {run_dir}")
        task = get_task(cfg.task)
        rows = read_rows(path, task, heldout_index(cfg, task))
        generated = {c for c, stage in ledger.completed_stages() if stage == "generate"}
        cycle = next(c for c in range(1, max(generated, default=0) + 2) if c not in generated)
        start = sum(p.source == HUMAN for p in ledger.problems())
        made = [Problem(task.name, d, HUMAN, start + i, prompt, answer, source=HUMAN)
                for i, (prompt, answer, d) in enumerate(rows)]
        ledger.add_problems(cycle, made)
    return cycle, made
