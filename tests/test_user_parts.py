"""A researcher's own task, reward, labeler and data, used the way the README says, through the CLI:
parts from files in folders of their own (`mytasks/sub.py:Subtraction`, `bad/rewards.py:fn`), a
labeler that raises (one line, the run `incomplete`, resumed once fixed), a reward that raises on
every sample (a clean warning and a monitor alert), and JSONL rows with every bad one named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run_lifecycle import cli

from rsi import resolve
from rsi.errors import ConfigError
from rsi.ledger import Ledger
from rsi.records import GrpoStep, RewardStats
from rsi.tasks.jsonl import MAX_REPORTED, JsonlTask, TaskFileError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REWARDS = """
def length_bonus(completions, **kw):
    return [min(1.0, len(c) / 10) for c in completions]

def always_raises(completions, **kw):
    raise ValueError("no column 'hint' in this task")
"""
LABELER_BROKEN = "def mine(verify, problem, samples, n_drawn, cfg):\n    return {}['seven']\n"
LABELER_FIXED = """
def mine(verify, problem, samples, n_drawn, cfg):
    return {s.index: (v.correct, f"mine: {v.correct}", 1.0) for s, v in zip(samples, verify(problem, samples))}
"""


@pytest.fixture(scope="module")
def own_parts_run(tmp_path_factory):
    """`rsi run quick` on a task, two rewards and a labeler from the user's folders (relative paths, as
    typed), the labeler raising at cycle 1's label stage; then fixed and resumed. Yields (home, run,
    the first command's result, the resume's result)."""
    home = tmp_path_factory.mktemp("user")
    (home / "mytasks").mkdir()
    (home / "bad").mkdir()
    # the example task, under a name of its own (this process may load the example itself in another test)
    (home / "mytasks" / "sub.py").write_text((EXAMPLES / "subtraction.py").read_text().replace(
        "name = \"subtraction\"", "name = \"my_subtraction\""))
    (home / "bad" / "rewards.py").write_text(REWARDS)
    (home / "bad" / "labelers.py").write_text(LABELER_BROKEN)
    cwd = Path.cwd()
    try:
        import os

        os.chdir(home)
        first = cli("run", "quick", "--run-dir", "r", "--set", "task=mytasks/sub.py:Subtraction",
                    "--set", "base.steps=60", "--set", "loop.cycles=1", "--set", "train.steps=3",
                    "--set", "eval.problems_per_difficulty=4", "--set", "eval.max_difficulty=6",
                    "--set", "loop.max_difficulty=6", "--set", "propose.problems_per_difficulty=4",
                    "--set", "grpo.steps=2", "--set", "grpo.prompts_per_step=2", "--set", "grpo.group_size=2",
                    "--set", "grpo.rewards=[{fn: bad/rewards.py:length_bonus, weight: 0.5}, "
                                  "{fn: bad/rewards.py:always_raises, weight: 0.1}]",
                    "--set", "label.labeler=bad/labelers.py:mine")
        (home / "bad" / "labelers.py").write_text(LABELER_FIXED)
        resumed = cli("resume", "r", "--allow-changed")
    finally:
        os.chdir(cwd)
    yield home, home / "r", first, resumed


def test_a_labeler_that_raises_stops_its_stage_in_one_line_and_the_run_reads_incomplete_until_resumed(
        own_parts_run):
    _home, run, first, resumed = own_parts_run
    said = " ".join(first.output.split())
    assert first.exit_code == 2, first.output
    assert "labeler" in said and "raised KeyError: 'seven'" in said and "labelers.py:2 in mine" in said
    assert "in cycle 1's label stage" in said and "--allow-changed" in said
    assert resumed.exit_code == 0, resumed.output
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        labels = ledger.labels(1)  # the fixed labeler labelled every well-formed sample of the resumed stage
        assert {"mine: True", "mine: False"} & {lab.reason for lab in labels}
        assert all(lab.reason.startswith(("mine: ", "malformed", "duplicate")) for lab in labels)


def test_a_crashed_run_reads_incomplete_in_status_and_the_console(tmp_path):
    """The state a crash leaves (stages committed, no stop, no end) reads `incomplete` with what to do,
    in `rsi status --json`, its text and the console's API."""
    from rsi.console.reads import overview
    from rsi.views.state import run_state

    run = tmp_path / "r"
    (run / "models").mkdir(parents=True)
    with Ledger(run / "ledger.sqlite") as ledger:
        ledger.set_run("quick", resolve.load("quick", []).model_dump(mode="json"))
        with ledger.stage(0, "base") as w:
            w.cost(wall_s=1.0, cpu_s=1.0)
        state = run_state(run, ledger)
    assert state["state"] == "incomplete" and f"rsi resume {run}" in state["why"]
    assert overview(run)["state"] == "incomplete"
    st = json.loads(cli("status", run, "--json").output)
    assert st["state"] == "incomplete" and "after cycle 0 base" in st["state_why"]
    with Ledger(run / "ledger.sqlite") as ledger:  # what the loop records when it ends
        ledger.add_event(0, "end", {"stages_done": 1, "why": "it ran every cycle it was given"})
    assert json.loads(cli("status", run, "--json").output)["state"] == "finished"


def test_a_reward_file_in_a_folder_and_one_that_always_raises_run_through_the_gate_and_every_reader(own_parts_run):
    home, run, _, resumed = own_parts_run
    said = " ".join(resumed.output.split())
    raised = f"{home / 'bad' / 'rewards.py'}:always_raises"
    assert f"warning: reward '{raised}' raised on 8 of 8 samples in cycle 1: grpo" in said, said
    assert "cycle 1's cycle" not in said
    st = json.loads(cli("status", run, "--json").output)
    assert st["state"] == "finished" and st["cycles_completed"] == 1
    verifier = st["monitors"]["verifier"]
    assert verifier["alert"] and verifier["value"]["errors"] == {f"reward {raised}": 8}
    assert "a reward function raised on 8 sample(s)" in verifier["message"]
    assert "no column 'hint'" in verifier["message"]
    for args in (["report", run], ["resume", run], ["status", run]):  # each read the grpo metrics back
        assert cli(*args).exit_code == 0
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        steps = [s for x in ledger.metrics() if x["stage"] == "grpo" for s in x["metrics"]["steps"]]
    bonus = f"{home / 'bad' / 'rewards.py'}:length_bonus"
    assert set(GrpoStep.read(steps[0]).rewards) == {bonus, raised}


def test_a_reward_named_by_a_path_reads_back_from_its_metrics():
    name = "bad/rewards.py:length_bonus"
    step = GrpoStep(1, 0.5, samples=4, rewards={name: RewardStats(0.25, 0.1, 1, "ValueError: x"),
                                                  "accuracy": RewardStats(0.5, 0.5, 0)})
    assert GrpoStep.read(step.metrics()) == step


# ---- a user's own data -------------------------------------------------------------------

def _rows(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_question_given_two_answers_is_refused_naming_both_lines(tmp_path):
    f = _rows(tmp_path / "q.jsonl", '{"question": "What is 8+8?", "answer": "16"}',
              '{"question": "What is 1+1?", "answer": "2"}', '{"question": "What is 8+8?", "answer": "999"}',
              '{"question": "What is 1+1?", "answer": "2"}')  # the same row twice is no conflict
    with pytest.raises(TaskFileError) as e:
        JsonlTask(f)
    assert f"{f}:3: key 'question' repeats the one at {f}:1 with another answer ('999' here, '16' there)" \
        in str(e.value)
    assert f"{f}:4" not in str(e.value)


def test_every_bad_row_of_a_file_is_named_up_to_a_cap(tmp_path):
    good = '{"question": "What is 2+2?", "answer": "4"}'
    bad = ["not json", '{"question": "", "answer": "1"}', '[1, 2]', '{"question": "x", "answer": true}',
           '{"question": "y", "answer": "1", "difficulty": 0}']
    f = _rows(tmp_path / "q.jsonl", good, *bad)
    with pytest.raises(TaskFileError) as e:
        JsonlTask(f)
    said = str(e.value)
    assert "5 bad rows; nothing was read" in said
    assert all(f"{f}:{n}:" in said for n in range(2, 7)) and f"{f}:1:" not in said
    many = _rows(tmp_path / "many.jsonl", *(["oops"] * (MAX_REPORTED + 7)))
    with pytest.raises(TaskFileError, match=rf"(?s){MAX_REPORTED + 7} bad rows.*\.\.\. and 7 more"):
        JsonlTask(many)


def test_a_task_file_whose_difficulties_cannot_hold_the_config_says_which_keys_to_set(tmp_path):
    rows = [json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i), "difficulty": 1 + i % 3})
            for i in range(60)]
    f = _rows(tmp_path / "q.jsonl", *rows)
    out = cli("run", "quick", "--run-dir", tmp_path / "r", "--set", f"task=jsonl:{f}")
    said = " ".join(out.output.split())
    assert out.exit_code == 2 and "from 4 to 3" not in said
    fix = "--set seed_data.max_difficulty=2 --set loop.max_difficulty=3 --set eval.max_difficulty=3"
    assert fix in said and said.count(fix) == 1
    assert resolve.load("quick", [f"task=jsonl:{f}", *fix.replace("--set ", "").split()]).task == f"jsonl:{f}"
    one = _rows(tmp_path / "one.jsonl", *(json.dumps({"question": f"{i}?", "answer": str(i)}) for i in range(9)))
    with pytest.raises(ConfigError, match="one difficulty \\(1\\).*'difficulty' fields.*base.steps=0"):
        resolve.load("quick", [f"task=jsonl:{one}"])
