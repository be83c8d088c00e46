"""People's labels: the right answer to a problem the vote could not label, or a kept label marked
wrong. Backs `rsi label RUN` and the console's Label page (one write path).

Where no verifier labels the answers (`label.labeler: vote`), a problem whose samples split, or
whose top answer fell below `label.vote_threshold`, trains nothing. Those problems form the label
queue (`Ledger.label_queue`): a person may give the right answer (`correct`), which trains from the next cycle
as an example of source `human`; or mark a kept label's answer wrong, which takes it out of the
training data from the next cycle on. The labels sit in their own ledger table (`human_labels`), apart
from the labelers' rows, with who gave them and why; "the next cycle" is the first cycle whose train
stage has not run when the label is recorded (`Ledger.add_human_label`). The label audit counts
people's verdicts on kept labels (`rsi.stages.label`). Like `rsi add`, labelling holds the run's
lock: label while the run is stopped, waiting for review, or finished.

    rsi label runs/vote-20261204-101500                       # the queue of the latest labelled cycle
    rsi label runs/vote-20261204-101500 sort/train/5/17 --answer 1234 --why "sorted by hand"
    rsi label runs/vote-20261204-101500 sort/train/5/3 --wrong 1243 --why "3 before 4"
"""

from __future__ import annotations

import getpass
from pathlib import Path

from rsi.config import resumed_config
from rsi.errors import RsiError
from rsi.ledger import Ledger
from rsi.run.rundir import ledger_path, open_ledger
from rsi.run.runlock import hold
from rsi.tasks import get_task

MAX_ANSWER = 4000


class LabelError(RsiError):
    """A person's label the run cannot take (no such problem, an empty answer, no such kept label)."""


def labelled_cycles(ledger: Ledger) -> list[int]:
    return [c for c, stage in ledger.completed_stages() if stage == "label"]


def label(run_dir: Path, problem_id: str, answer: str, correct: bool = True, why: str = "",
          by: str | None = None) -> dict:
    """Record a person's label on the run in `run_dir`; returns it with the cycle it joins."""
    answer = answer.strip() if correct else answer.rstrip()  # a kept label's answer as stored (`answer_of`)
    if not answer.strip():
        raise LabelError("a label needs an answer: the right one (--answer), or the kept one that is wrong (--wrong)")
    if len(answer) > MAX_ANSWER:
        raise LabelError(f"the answer is {len(answer)} characters long; a label takes at most {MAX_ANSWER}")
    with hold(Path(run_dir), "rsi label"), Ledger(ledger_path(run_dir), create=False) as ledger:
        found = ledger.problem_row(problem_id)
        if found is None:
            raise LabelError(f"run {run_dir} has no problem {problem_id!r}; `rsi label {run_dir}` lists the queue")
        if found["split"] == "heldout":
            raise LabelError(f"problem {problem_id!r} is held out for evaluation: labelling it would train on the test")
        if not correct and answer not in ledger.kept_answers(problem_id):
            raise LabelError(f"problem {problem_id!r} has no kept label with answer {answer!r} to mark wrong")
        cfg = resumed_config(ledger.run_info()["config"], ledger.resume_overrides(), f"the config of run {run_dir}")
        alphabet = get_task(cfg.task).alphabet if cfg.model.kind == "tiny" else None
        if correct and alphabet is not None and (bad := sorted(set(answer) - set(alphabet))):
            raise LabelError(f"characters {''.join(bad)!r} are outside the model's alphabet "
                             f"{''.join(sorted(set(alphabet)))!r} (the tiny model reads only those)")
        person = (by or getpass.getuser()).strip() or getpass.getuser()
        cycle = ledger.add_human_label(problem_id, answer, correct, person, why.strip())
    return {"problem_id": problem_id, "answer": answer, "correct": correct, "by": person, "why": why.strip(),
            "cycle": cycle}


def people_on_kept(ledger: Ledger, cycle: int) -> dict[str, int]:
    """People's verdicts, recorded for `cycle`, on answers the labelers kept in earlier cycles: how many
    kept (problem, answer) pairs people judged (`judged`) and how many of those they found wrong
    (`wrong`: marked wrong, or a different answer given)."""
    judged = wrong = 0
    for h in ledger.human_labels(cycle):
        if kept := ledger.kept_answers(h["problem_id"], before_cycle=cycle):
            judged += 1
            wrong += (not h["correct"] and h["answer"] in kept) or (h["correct"] and h["answer"] not in kept)
    return {"judged": judged, "wrong": wrong}


def read_queue(run_dir: Path, cycle: int | None = None, limit: int = 50) -> tuple[int | None, list[dict]]:
    """(the cycle shown, its queue) for `rsi label RUN`; the latest labelled cycle by default."""
    with open_ledger(Path(run_dir)) as ledger:
        cycles = labelled_cycles(ledger)
        if cycle is None:
            cycle = cycles[-1] if cycles else None
        elif cycle not in cycles:
            raise LabelError(f"cycle {cycle} of {run_dir} has no labels yet (labelled cycles: {cycles or 'none'})")
        return cycle, ([] if cycle is None else ledger.label_queue(cycle, limit))
