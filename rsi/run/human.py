"""Problems people add to a run (`rsi add RUN FILE`), kept apart from generated ones, and taken
back (`rsi withdraw RUN`) until they are used.

FILE is JSONL, one object a line: `prompt` (the problem as the task poses it, e.g. `s:4312=` for
`sort`), `answer` (its reference answer, which the task's verifier checks the model's answers
against) and `difficulty` (an integer in the task's range; a task that reads its own prompts,
like `sort` or `addition`, takes it from the prompt when it is left out).

Every row is checked as the task would, before anything is written (`Task.check_row`): the
prompt's format, its difficulty, the answer (computed by the task where it can, else through its
verifier), every character in the tiny model's alphabet (it cannot read others), and no overlap
with a held-out evaluation prompt (the run's decontamination). A bad row is an error naming the
file, line and key, and nothing is added. A row the run already has (the same file added twice)
is skipped and counted. The rows become problems with split and source `human` (ids
`<task>/human/<difficulty>/<n>`), in the first cycle whose generate stage has not run yet: the
champion answers them with that cycle's generated problems, the labeler checks the answers, and
what it keeps trains the candidate with origin `human` (also in `rsi export`). Both commands
hold the run's lock (`rsi.run.runlock`): add while the run is stopped.

    rsi add runs/quick-20261123-101500 my_problems.jsonl
    rsi withdraw runs/quick-20261123-101500 --file my_problems.jsonl
"""

from __future__ import annotations

from pathlib import Path

from rsi.config import resumed_config
from rsi.errors import RsiError
from rsi.ledger import Ledger
from rsi.monitors import HeldoutIndex
from rsi.records import Problem
from rsi.run.context import heldout_index
from rsi.run.runlock import hold
from rsi.tasks import get_task
from rsi.tasks.jsonl import OneAnswer, TaskFileError, json_rows

HUMAN = "human"


def read_rows(path: Path, task, index: HeldoutIndex, alphabet: str | None = None) -> list[tuple[str, str, int]]:
    """(prompt, answer, difficulty) per row, each row once; TaskFileError naming file, line and key
    of every bad row. `alphabet`: the characters the run's model can read (None: any)."""
    one_answer = OneAnswer("prompt")

    def parse(where: str, row: dict, d: int | None) -> tuple[str, str, int]:
        unknown = sorted(set(row) - {"prompt", "answer", "difficulty"})
        if unknown:
            raise TaskFileError(f"{where}: unknown key {unknown[0]!r}; a row has 'prompt', 'answer' and "
                                "'difficulty'.")
        prompt, answer = row.get("prompt"), row.get("answer")
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskFileError(f"{where}: key 'prompt' must be non-empty text (got {prompt!r}).")
        if isinstance(answer, bool) or not isinstance(answer, str | int) or not str(answer).strip():
            raise TaskFileError(f"{where}: key 'answer' must be non-empty text or an integer (got {answer!r}).")
        answer = str(answer).strip()
        if d is not None and not task.min_difficulty <= d <= task.max_difficulty:
            raise TaskFileError(f"{where}: key 'difficulty' must be in task {task.name!r}'s range "
                                f"{task.min_difficulty}..{task.max_difficulty} (got {d}).")
        if alphabet is not None and (bad := sorted(set(prompt + answer) - set(alphabet))):
            raise TaskFileError(f"{where}: characters {''.join(bad)!r} are outside the model's alphabet "
                                f"{''.join(sorted(set(alphabet)))!r} (the tiny model reads only those).")
        d, why = task.check_row(prompt, answer, d)
        if why:
            raise TaskFileError(f"{where}: {why}.")
        if not task.min_difficulty <= d <= task.max_difficulty:
            raise TaskFileError(f"{where}: the prompt is difficulty {d}, outside task {task.name!r}'s range "
                                f"{task.min_difficulty}..{task.max_difficulty}.")
        hit = index.hit(prompt)
        if hit:
            raise TaskFileError(f"{where}: key 'prompt' overlaps a held-out evaluation prompt ({hit} match), so "
                                "training on it would contaminate the evaluation; remove or change the row.")
        one_answer(where, prompt, answer)
        return prompt, answer, d

    shape = '{"prompt": ..., "answer": ..., "difficulty": ...} object'
    return list(dict.fromkeys(json_rows(Path(path), shape, parse, default_difficulty=None)))


def _open(run_dir: Path):
    from rsi.run.rundir import LEDGER

    path = Path(run_dir) / LEDGER
    if not path.is_file():
        raise RsiError(f"{run_dir} is not an rsi run directory (no {LEDGER}).")
    return Ledger(path, create=False)


def add_problems(run_dir: Path, path: Path) -> tuple[int, list[Problem], int]:
    """Add the file's problems to the run; returns (the cycle they join, the problems added, how
    many rows the run already had)."""
    with hold(Path(run_dir), "rsi add"), _open(run_dir) as ledger:
        cfg = resumed_config(ledger.run_info()["config"], ledger.resume_overrides(), f"the config of run {run_dir}")
        task = get_task(cfg.task)
        alphabet = task.alphabet if cfg.model.kind == "tiny" else None
        rows = read_rows(path, task, heldout_index(cfg, task), alphabet)
        mine = [p for p in ledger.problems() if p.source == HUMAN]
        have = {(p.prompt, p.answer, p.difficulty) for p in mine}
        new = [r for r in rows if r not in have]
        cycle = _open_cycle(ledger)
        start = max((int(p.id.rsplit("/", 1)[1]) for p in mine), default=-1) + 1
        made = [Problem(task.name, d, HUMAN, start + i, prompt, answer, source=HUMAN)
                for i, (prompt, answer, d) in enumerate(new)]
        if made:
            ledger.add_problems(cycle, made)
    return cycle, made, len(rows) - len(new)


def withdraw_problems(run_dir: Path, path: Path | None = None) -> tuple[int, int]:
    """Take back human problems no stage has used yet: those of `path`'s rows (None: all of them).
    Returns (how many were withdrawn, the cycle). Problems a generate stage already answered stay:
    they are part of what the run did."""
    with hold(Path(run_dir), "rsi withdraw"), _open(run_dir) as ledger:
        cycle = _open_cycle(ledger)
        waiting = [p for p in ledger.problems(cycle=cycle) if p.source == HUMAN]
        if path is not None:
            wanted = set(_loose_rows(Path(path)))
            waiting = [p for p in waiting if (p.prompt, p.answer) in wanted]
        if waiting:
            ledger.withdraw_problems([p.id for p in waiting], cycle)
    return len(waiting), cycle


def _loose_rows(path: Path) -> list[tuple[str, str]]:
    """(prompt, answer) of every row of a file added before: only those keys are read."""
    def parse(where: str, row: dict, _: int | None) -> tuple[str, str]:
        prompt, answer = row.get("prompt"), row.get("answer")
        if not isinstance(prompt, str) or answer is None:
            raise TaskFileError(f"{where}: a row needs 'prompt' and 'answer' to say which problem to withdraw.")
        return prompt, str(answer).strip()

    return json_rows(path, '{"prompt": ..., "answer": ...} object', parse, default_difficulty=None)


def _open_cycle(ledger: Ledger) -> int:
    """The first cycle whose generate stage has not run: where added problems wait."""
    generated = {c for c, stage in ledger.completed_stages() if stage == "generate"}
    return next(c for c in range(1, max(generated, default=0) + 2) if c not in generated)
