"""A task from the `verifiers` ecosystem (`verifiers:<taskset id>`): a tiny environment package
written here, its tasks as problems and its rubric as the verifier, through a loop with labels,
GRPO rewards and evaluation; environments that cannot be used are refused before any work."""

import io
import sqlite3
import textwrap

import pytest
from rich.console import Console

from rsi import resolve
from rsi.errors import ConfigError
from rsi.tasks import get_task, heldout_set

pytestmark = pytest.mark.slow

ENV = '''
"""Sort a string of digits: a single-turn verifiers taskset with a difficulty field."""
import random

import verifiers.v1 as vf


class SortData(vf.TaskData):
    answer: str
    difficulty: int = 1


class SortTask(vf.Task[SortData, vf.State]):
    @vf.reward
    async def correct(self, task: SortData, trace: vf.Trace) -> float:
        return float(trace.last_reply.strip() == task.answer)


class SortTaskset(vf.Taskset[SortTask]):
    def load(self):
        rng = random.Random(0)
        for i in range(600):
            d = 1 + i % 4
            s = "".join(rng.choice("0123456789") for _ in range(d))
            yield SortTask(SortData(prompt=f"s:{s}=", answer="".join(sorted(s)), difficulty=d))


__all__ = ["SortTaskset"]
'''

NO_PROMPT = '''
import verifiers.v1 as vf


class Blank(vf.Task[vf.TaskData, vf.State]):
    pass


class BlankTaskset(vf.Taskset[Blank]):
    def load(self):
        yield Blank(vf.TaskData(prompt="ok"))
        yield Blank(vf.TaskData(name="second"))


__all__ = ["BlankTaskset"]
'''

LOOP = ["task=verifiers:rsi_sort_env", "seed_data.min_difficulty=1", "seed_data.max_difficulty=2",
        "eval.min_difficulty=1", "eval.max_difficulty=4", "loop.max_difficulty=4", "loop.cycles=1",
        "eval.problems_per_difficulty=10", "propose.problems_per_difficulty=10", "base.steps=200", "train.steps=20",
        "grpo.steps=2", "grpo.prompts_per_step=4", "grpo.group_size=4"]


@pytest.fixture
def envs(tmp_path, monkeypatch):
    for name, code in (("rsi_sort_env", ENV), ("rsi_blank_env", NO_PROMPT)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_an_environments_tasks_are_problems_and_its_rubric_the_verifier(envs):
    task = get_task("verifiers:rsi_sort_env")
    assert (task.min_difficulty, task.max_difficulty) == (1, 4)
    p = heldout_set(task, 3, 5)[0]
    assert p.difficulty == 3 and p.prompt.startswith("s:") and p.answer == "".join(sorted(p.prompt[2:-1]))
    right, wrong = task.verify(p, p.answer), task.verify(p, "0")
    assert (right.correct, right.reward, right.reason) == (True, 1.0, "rubric: correct 1")
    assert (wrong.correct, wrong.reward) == (False, 0.0)


def test_a_loop_on_an_environment_labels_rewards_and_evaluates_through_its_rubric(envs, tmp_path):
    from rsi.loop import start

    run = tmp_path / "run"
    start(resolve.load("quick", LOOP), run, Console(file=io.StringIO()))
    con = sqlite3.connect(run / "ledger.sqlite")
    try:
        kept = con.execute("SELECT count(*), min(reason), max(reason) FROM labels WHERE kept = 1").fetchone()
        rejected = [r for (r,) in con.execute("SELECT reason FROM labels WHERE reason LIKE 'rejected by verifier%'")]
        grpo = con.execute("SELECT metrics_json FROM metrics WHERE stage = 'grpo'").fetchone()
        evals = con.execute("SELECT count(DISTINCT difficulty) FROM evals WHERE model = 'cycle-0000'").fetchone()
    finally:
        con.close()
    assert kept[0] > 0 and kept[1] == kept[2] == "verified"  # every kept label passed the rubric
    # the rubric gave the verdicts: each rejection is its own ("rubric: correct 0"), not an exact-match check's
    assert rejected and all(r == "rejected by verifier: rubric: correct 0" for r in rejected), set(rejected)
    assert grpo is not None and '"reward/accuracy/mean"' in grpo[0]  # GRPO's accuracy reward read the rubric
    assert evals[0] >= 1


def test_environments_that_cannot_be_used_are_refused_before_any_work(envs):
    with pytest.raises(ConfigError, match=r"task 'verifiers:no_such_env': the environment could not be loaded"):
        resolve.load("quick", ["task=verifiers:no_such_env"])
    with pytest.raises(ConfigError, match=r"task 'verifiers:rsi_blank_env', task 1 \(second\): no prompt"):
        resolve.load("quick", ["task=verifiers:rsi_blank_env"])
