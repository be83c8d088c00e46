"""Parts from outside rsi: a task, labeler, filter, objective or reward from a file
(`path/to/file.py:Name`) or from an installed package's entry point, found again by every later
command from what the run recorded; `examples/subtraction.py` is the one-file task of the docs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsi.config import FilterConfig, LabelConfig
from rsi.errors import ConfigError
from rsi.ledger import Ledger
from rsi.records import Problem, Sample
from rsi.resolve import load, origins
from rsi.stages.label import label_samples
from rsi.tasks import get_task, problem

EXAMPLE = Path(__file__).parent.parent / "examples" / "subtraction.py"


def test_the_subtraction_example_is_a_whole_task_in_one_short_file():
    task = get_task(f"{EXAMPLE}:Subtraction")
    assert task.name == "subtraction" and get_task("subtraction") is task  # its problems carry its name
    for d in (1, 4, 9):
        p = problem(task, d, "heldout", 3)
        assert task.verify(p, p.answer).correct and not task.verify(p, p.answer + "1").correct
        assert task.well_formed(p, p.answer) and task.solve(p.prompt) == (d, p.answer)
        a, b = map(int, p.prompt[2:-1].split("-"))
        assert len(str(a)) == d and int(p.answer) == a - b >= 0
    assert len(EXAMPLE.read_text().splitlines()) <= 55  # docstring included


def test_a_task_from_a_file_runs_and_every_later_command_finds_it_again(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    shutil.copy(EXAMPLE, home / "subtraction.py")

    def rsi(*args, cwd=elsewhere):  # each a new process: it knows the task only from what the run recorded
        out = subprocess.run([sys.executable, "-m", "rsi.cli", *map(str, args)], cwd=cwd, capture_output=True,
                             text=True, timeout=300)
        assert "Traceback" not in out.stderr, out.stderr
        return out

    small = ["--set", "base.steps=20", "--set", "train.steps=3", "--set", "eval.problems_per_difficulty=4",
             "--set", "propose.problems_per_difficulty=4", "--set", "loop.max_difficulty=6",
             "--set", "eval.max_difficulty=6", "--set", "loop.cycles=1"]
    out = rsi("run", "quick", "--run-dir", "r", "--set", "task=subtraction.py:Subtraction", *small, cwd=home)
    assert out.returncode == 0, out.stdout + out.stderr
    run = home / "r"
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        parts = ledger.events("parts")[0]["detail"]
        assert {p.task for p in ledger.problems()} == {"subtraction"}
    assert parts["task"] == {"ref": f"{home}/subtraction.py:Subtraction", "from": "file",
                             "path": str(home / "subtraction.py"), "sha256": parts["task"]["sha256"]}
    assert parts["label.labeler"] == {"ref": "verifier", "from": "built-in"}
    status = rsi("status", run, "--json")
    notes = json.loads(status.stdout)["notes"] if status.returncode == 0 else status.stderr
    assert status.returncode == 0 and not any("would refuse" in n for n in notes), notes
    assert rsi("report", run).returncode == 0
    assert rsi("resume", run, "--set", "loop.cycles=2").returncode == 0
    (home / "subtraction.py").write_text((home / "subtraction.py").read_text() + "\n# edited\n")
    out = rsi("resume", run, "--set", "loop.cycles=3")
    said = out.stdout + out.stderr
    assert out.returncode == 2 and "subtraction.py changed (sha256" in said and "--allow-changed" in said, said


PACKAGE = '''
def first_answer_labeler(verify, problem, samples, n_drawn, cfg):
    """Keeps each problem's first well-formed sample."""
    return {s.index: (s is samples[0], "first" if s is samples[0] else "not first", 1.0) for s in samples}


def no_sevens(problem, answer):
    return "has a 7" if "7" in answer else None


def answers_only(tokenizer, examples):
    from rsi.learn.objectives import sft_batch
    return sft_batch(tokenizer, examples)
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A package `rsi_extras` 0.3 installed on sys.path, declaring a labeler, a filter and an objective."""
    (tmp_path / "rsi_extras.py").write_text(PACKAGE)
    info = tmp_path / "rsi_extras-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rsi-extras\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[rsi.labelers]\nfirst = rsi_extras:first_answer_labeler\n\n"
                                           "[rsi.filters]\nno_sevens = rsi_extras:no_sevens\n\n"
                                           "[rsi.objectives]\nanswers = rsi_extras:answers_only\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("rsi_extras", None)


def test_parts_from_an_installed_package_are_found_by_name_and_recorded_with_its_version(installed):
    cfg = load("quick", ["label.labeler=first", "filter.custom=[no_sevens]", "train.objective=answers"])
    found = origins(cfg)
    want = {"from": "entry point", "package": "rsi-extras 0.3"}
    assert found["label.labeler"] == {"ref": "first", **want, "value": "rsi_extras:first_answer_labeler"}
    assert found["filter.custom[0]"] == {"ref": "no_sevens", **want, "value": "rsi_extras:no_sevens"}
    assert found["train.objective"]["from"] == "entry point" and found["base.objective"]["from"] == "built-in"
    task = get_task("sort")
    probs = [Problem("sort", 2, "train", i, f"s:{a}=", a) for i, a in enumerate(["17", "23"])]
    samples = [Sample(p.id, j, text, 2) for p in probs for j, text in enumerate([p.answer, "99"])]
    labels = label_samples(task, probs, samples, cfg.label, cfg.filter, lambda text: None)
    kept = {(lab.problem_id, lab.sample_index): (lab.kept, lab.reason) for lab in labels}
    assert kept[(probs[0].id, 0)] == (False, "has a 7")  # the package's labeler kept it, its filter dropped it
    assert kept[(probs[1].id, 0)] == (True, "first") and kept[(probs[1].id, 1)] == (False, "not first")
    assert [lab.audit_correct for lab in labels] == [True, False, True, False]


def test_unknown_parts_are_refused_before_any_work_naming_the_key(tmp_path):
    (tmp_path / "mine.py").write_text("def keep_all(verify, problem, samples, n, cfg):\n    return {}\nX = 3\n")
    with pytest.raises(ConfigError, match=r"'label.labeler': unknown labeler 'judge'; known: verifier, vote"):
        load("quick", ["label.labeler=judge"])
    with pytest.raises(ConfigError, match=r"'filter.custom\[0\]': filter file .*mine.py defines no 'nope'; defined in "
                                        r"it: keep_all"):
        load("quick", [f"filter.custom=[{tmp_path}/mine.py:nope]"])
    with pytest.raises(ConfigError, match=r"'train.objective': '.*mine.py:X' names something that is not a function"):
        load("quick", [f"train.objective={tmp_path}/mine.py:X"])
    assert load("quick", [f"label.labeler={tmp_path}/mine.py:keep_all"]).label.labeler == f"{tmp_path}/mine.py:keep_all"
    assert FilterConfig().custom == [] and LabelConfig().labeler == "verifier"
