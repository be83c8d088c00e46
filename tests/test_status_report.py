"""status, export and report over a small hand-built run (base + 2 cycles)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from rsi.errors import RunDirError
from rsi.ledger import Ledger
from rsi.records import EvalResult, GateDecision, Label, Problem, Sample
from rsi.run.curriculum import frontier
from rsi.views.export import export
from rsi.views.report import write_report
from rsi.views.status import format_status, status

CONFIG = {"curriculum": {"threshold": 0.8}, "seed_data": {"max_difficulty": 2}}
PROMOTE_REASON = "gain +25.0% above the frontier (lower bound +5.0%)"
REJECT_REASON = "regression -50.0% at difficulty 2 <exceeds> max_regression & 5%"


def _evals(model: str, accs: dict[int, tuple[int, int]]) -> list[EvalResult]:
    return [EvalResult(model, d, n, c, 0.0, 1.0, tuple(i < c for i in range(n))) for d, (n, c) in accs.items()]


def _prob(seed: int, source: str = "generated") -> Problem:
    return Problem("addition", 3, "train", seed, f"{seed}+{seed}=", str(2 * seed), source)


@pytest.fixture
def run_dir(tmp_path):
    """cycle 0: base (f=1); cycle 1: candidate promoted (f=2); cycle 2: candidate rejected."""
    run = tmp_path / "demo"
    with Ledger(run / "ledger.sqlite") as led:
        led.set_run("demo", CONFIG)
        with led.stage(0, "base") as w:
            w.add_eval(0, "cycle-0000", _evals("cycle-0000", {1: (4, 4), 2: (4, 3), 3: (4, 0)}))
            w.cost(wall_s=100.0, cpu_s=1800.0, train_sequences=50, train_tokens=1000)
        # cycle 1: problems 1, 2, 3 (3 is human); labels 4, kept 3, audit T/T/F among kept.
        p1, p2, p3 = _prob(1), _prob(2), _prob(3, source="human")
        cycle1 = {
            "propose": lambda: led.add_problems(1, [p1, p2, p3]),
            "generate": lambda: led.add_samples(1, "cycle-0000", [
                Sample(p.id, i, "x", 3) for p in (p1, p2, p3) for i in range(2)]),
            "label": lambda: led.add_labels(1, [
                Label(p1.id, 0, "2", True, "vote 2/2", 1.0, True),
                Label(p1.id, 1, "2", True, "vote 2/2", 1.0, True),
                Label(p2.id, 0, "5", True, "vote 2/2", 1.0, False),
                Label(p3.id, 0, "9", False, "no majority", 0.5, False)]),
            "train": lambda: None,
            "evaluate": lambda: led.add_eval(1, "cycle-0001", _evals(
                "cycle-0001", {1: (4, 4), 2: (4, 4), 3: (4, 2)})),
            "gate": lambda: led.add_gate(1, "cycle-0000", "cycle-0001",
                                         GateDecision(True, PROMOTE_REASON, 0.25, 0.05, 0.0)),
        }
        p4, p5 = _prob(4), _prob(5)
        cycle2 = {
            "propose": lambda: led.add_problems(2, [p4, p5]),
            "generate": lambda: led.add_samples(2, "cycle-0001", [Sample(p4.id, 0, "8", 2)]),
            "label": lambda: led.add_labels(2, [
                Label(p4.id, 0, "8", True, "verified", 1.0, None),
                Label(p5.id, 0, "1", False, "wrong", 0.0, None)]),
            "train": lambda: None,
            "evaluate": lambda: led.add_eval(2, "cycle-0002", _evals(
                "cycle-0002", {1: (4, 4), 2: (4, 2), 3: (4, 4)})),
            "gate": lambda: led.add_gate(2, "cycle-0001", "cycle-0002",
                                         GateDecision(False, REJECT_REASON, 0.1, -0.2, 0.5)),
        }
        for cycle, stages in ((1, cycle1), (2, cycle2)):
            for stage, write in stages.items():
                with led.stage(cycle, stage) as w:
                    write()
                    w.cost(wall_s=10.0, cpu_s=150.0, generated_tokens=7 if stage == "generate" else 0,
                           train_sequences=5 if stage == "train" else 0,
                           train_tokens=100 if stage == "train" else 0)
    (run / "champion").write_text("cycle-0001\n")
    return run


def test_frontier():
    assert frontier({1: 1.0, 2: 0.9, 3: 0.5, 4: 1.0}, 0.9) == 2
    assert frontier({1: 0.1}, 0.5) == 0
    assert frontier({}, 0.5, min_difficulty=3) == 2
    assert frontier({2: 1.0, 3: 1.0}, 0.5, min_difficulty=2) == 3
    assert frontier({1: 1.0, 3: 1.0}, 0.5) == 1  # a difficulty never evaluated counts as failed


def test_status_numbers(run_dir):
    st = status(run_dir)
    assert st["name"] == "demo" and st["champion"] == "cycle-0001"
    assert st["cycles_completed"] == 2 and st["last_stage"] == [2, "gate"]
    assert st["eval"] == {"1": 1.0, "2": 1.0, "3": 0.5}
    assert st["frontier"] == 2 and st["frontier_at_cycle0"] == 1
    assert st["labeled_max_difficulty"] == 2
    assert st["cost"] == {"wall_s": 100.0 + 12 * 10.0, "cpu_s": 3600.0, "train_sequences": 50 + 2 * 5,
                          "train_tokens": 1000 + 2 * 100, "generated_tokens": 14}
    assert st["velocity"] == pytest.approx(1.0)  # (2 - 1) frontier / 1 CPU-hour
    # the mean over the ladder 1-3 moves even where the frontier would not: (1 + 1 + .5) / 3 against (1 + .75 + 0) / 3
    assert st["ladder"] == [1, 3] and st["mean_accuracy"] == pytest.approx(2.5 / 3)
    assert st["mean_accuracy_at_cycle0"] == pytest.approx(1.75 / 3)
    assert st["mean_accuracy_velocity"] == pytest.approx(0.75 / 3)  # per CPU-hour
    assert st["mean_accuracy_by_cycle"] == {"0": pytest.approx(1.75 / 3), "1": pytest.approx(2.5 / 3),
                                            "2": pytest.approx(2.5 / 3)}
    assert st["label_accuracy"] == {"1": pytest.approx(2 / 3), "2": None}
    assert st["kept_fraction"] == {"1": 0.75, "2": 0.5}
    assert [(g["cycle"], g["promote"], g["reason"]) for g in st["gates"]] == [
        (1, True, PROMOTE_REASON), (2, False, REJECT_REASON)]
    assert st["champions"] == {"0": "cycle-0000", "1": "cycle-0001", "2": "cycle-0001"}
    assert st["frontier_by_cycle"] == {"0": 1, "1": 2, "2": 2}
    assert st["cpu_s_by_cycle"] == {"0": 1800.0, "1": 2700.0, "2": 3600.0}
    assert json.loads(json.dumps(st)) == st
    console = Console(record=True, width=120)
    console.print(format_status(st))
    text = console.export_text()
    assert "cycle-0001" in text and "keep champion" in text and "<exceeds>" in text
    assert "mean accuracy" in text and "83.3%" in text and "+25.0 points / CPU-hour" in text


def test_status_shows_every_difficulty_in_80_columns(run_dir):
    """A 24-difficulty ladder used to collapse to empty cells and '…' at 80 columns."""
    st = status(run_dir) | {"eval": {str(d): (d % 10) / 10 for d in range(1, 25)}}
    console = Console(record=True, width=80)
    console.print(format_status(st))
    text = console.export_text()
    assert "…" not in text.split("champion accuracy by difficulty")[1].split("cycles")[0]
    for d in range(1, 25):
        assert f" {d} " in text and f"{(d % 10) * 10}%" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_status_without_champion_file_derives_it(run_dir):
    (run_dir / "champion").unlink()
    assert status(run_dir)["champion"] == "cycle-0001"


def test_status_missing_run_dir_or_ledger(tmp_path):
    with pytest.raises(RunDirError, match="no such run directory"):
        status(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="ledger.sqlite"):
        status(tmp_path / "empty")
    assert not (tmp_path / "empty" / "ledger.sqlite").exists()


def test_export(run_dir, tmp_path):
    out, n = export(run_dir)
    assert out == run_dir / "accepted.jsonl" and n == 3 and out.stat().st_mode & 0o777 == 0o600
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # p1's two kept labels agree (one example), p2 kept, p3 rejected; cycle 2: p4 kept.
    assert [(r["prompt"], r["completion"], r["difficulty"], r["source"], r["cycle"]) for r in rows] == [
        ("1+1=", "2", 3, "model", 1), ("2+2=", "5", 3, "model", 1), ("4+4=", "8", 3, "model", 2)]
    other, _ = export(run_dir, tmp_path / "sub" / "x.jsonl")
    assert other.read_text() == out.read_text()
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))


def test_report(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html" and path.stat().st_mode & 0o777 == 0o600
    page = path.read_text()
    assert page.count("<img") >= 2 and page.count("data:image/png;base64,") >= 2  # frontier, labels
    assert page.count('<table class="heat">') == 2  # champion per cycle, candidate per gate
    assert 'title="cycle 2: candidate cycle-0002 (rolled back), difficulty 3: 100.0%"' in page
    assert PROMOTE_REASON in page
    assert "regression -50.0% at difficulty 2 &lt;exceeds&gt; max_regression &amp; 5%" in page
    assert "<script" not in page
    assert not list(run_dir.glob(".*.tmp"))


def test_status_says_a_run_stalled_and_wraps_the_champion_digest_at_80_columns(run_dir):
    from rsi.views.status import stalled

    st = status(run_dir)
    assert st["stalled"] is None  # one rollback is not a stall
    gates = st["gates"] + [{"cycle": 3, "promote": False, "reason": "gain +0.0%; nothing learnt: ..."}]
    assert stalled(gates) == {"cycles": 2, "since": 2, "why": "gain +0.0%; nothing learnt: ..."}
    digest = "ab" * 32
    console = Console(record=True, width=80)
    console.print(format_status(st | {"stalled": stalled(gates), "champion_weights_sha256": digest}))
    text = console.export_text()
    assert "the last 2 cycles (from cycle 2) kept the champion; the latest: gain +0.0%" in " ".join(text.split())
    assert digest in "".join(text.split()) and "…" not in text.split("champion weights")[1].split("checkpoints")[0]
