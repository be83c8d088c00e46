"""End-to-end: the `quick` config through the real CLI, and a run killed with SIGKILL mid-stage then resumed."""

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsi.cli import app
from rsi.config import load_config
from rsi.monitors import MONITORS, HeldoutIndex
from rsi.run.faults import kill_chain, reference_stages
from rsi.tasks import get_task, problem, problems
from rsi.views.fingerprint import differences, fingerprint

pytestmark = pytest.mark.slow
RSI = [sys.executable, "-m", "rsi.cli"]


def rsi(*args, check=True):
    """The `rsi` command line run in this process (its imports, about 6 s of torch and transformers, paid once
    a worker, not once a command); `.returncode`, `.stdout`, `.stderr`. The tests of signals and kills start
    real processes (`RSI`)."""
    out = CliRunner().invoke(app, [str(a) for a in args])
    out.returncode = out.exit_code
    assert out.exception is None or isinstance(out.exception, SystemExit), (args, out.exception, out.output)
    if check and out.returncode != 0:
        raise AssertionError(f"rsi {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def table(run: Path, sql: str):
    con = sqlite3.connect(run / "ledger.sqlite")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def start_and_kill_after(run: Path, cycle: int, stage: str, *sets: str) -> None:
    """Start `rsi run quick` (with `--set` `sets`), wait until (cycle, stage) is committed, then SIGKILL the
    whole process group."""
    proc = subprocess.Popen([*RSI, "run", "quick", "--run-dir", str(run), *[a for s in sets for a in ("--set", s)]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (run / "ledger.sqlite").exists():
            try:
                if table(run, f"select 1 from stages where cycle = {cycle} and stage = '{stage}'"):
                    break
            except sqlite3.Error:
                pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("e2e") / "quick"
    rsi("run", "quick", "--run-dir", str(run))
    return run


# the fault tests' run: 14 stages, every kind twice (fewer steps than the tour: only equality with the uninterrupted
# run matters here, not how far it gets)
SHORT = ["quick", "--set", "loop.cycles=2", "--set", "base.steps=300", "--set", "train.steps=30"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """The uninterrupted run the fault tests' interrupted ones must equal."""
    run = tmp_path_factory.mktemp("e2e") / "short"
    rsi("run", *SHORT, "--run-dir", str(run))
    return run


def test_quick_run_produces_a_complete_run_dir(quick_run):
    for name in ("config.yaml", "ledger.sqlite", "champion", "state.json", "report.html"):
        assert (quick_run / name).is_file(), name
    champion = (quick_run / "champion").read_text().strip()
    assert (quick_run / "models" / champion / "manifest.json").is_file()
    stages = table(quick_run, "select cycle, stage from stages order by rowid")
    assert stages[:2] == [(0, "base"), (0, "evaluate")]
    assert [s for c, s in stages if c == 1] == ["propose", "generate", "label", "train", "evaluate", "gate"]
    # every held-out answer is kept, scored as the evals table scored it
    answers = table(quick_run, "select cycle, model, difficulty, sum(correct), count(*) from eval_answers "
                               "group by cycle, model, difficulty order by cycle, model, difficulty")
    assert answers == table(quick_run, "select cycle, model, difficulty, correct, n from evals "
                                       "order by cycle, model, difficulty")
    meta = dict(table(quick_run, "select key, value from meta"))
    assert meta["rsi_version"] and meta["source_revision"] and meta["schema_version"] == "1"


def test_the_quick_tour_shows_the_loop_working(quick_run):
    """The headline, guarded: the quick run's frontier ends past its labelled range (by 2 or more),
    every cycle's gate gave its reason, and no monitor cried wolf on this honest run."""
    st = json.loads(rsi("status", str(quick_run), "--json").stdout)
    assert st["frontier"] >= st["labeled_max_difficulty"] + 2, st["frontier_by_cycle"]
    assert st["mean_accuracy"] > st["mean_accuracy_at_cycle0"]
    assert len(st["gates"]) == st["cycles_completed"] and all(g["reason"] for g in st["gates"])
    alerts = table(quick_run, "select cycle, monitor, message from monitors where alert = 1")
    assert alerts == [], alerts


def test_status_json_has_the_documented_fields(quick_run):
    st = json.loads(rsi("status", str(quick_run), "--json").stdout)
    for key in ("cycles_completed", "champion", "frontier", "labeled_max_difficulty", "eval", "cost", "velocity"):
        assert key in st, key
    cycles = load_config("quick").loop.cycles
    assert st["cycles_completed"] == cycles and st["labeled_max_difficulty"] == 3
    assert st["cost"]["train_sequences"] > 0 and st["cost"]["generated_tokens"] > 0 and st["cost"]["cpu_s"] > 0
    assert st["eval"]["1"] >= 0.9  # the base model learned the labelled range
    assert set(st["monitors"]) == set(MONITORS)
    for name, reading in st["monitors"].items():
        assert reading["cycle"] == cycles and isinstance(reading["alert"], bool) and reading["message"], name


def test_no_problem_or_kept_sample_overlaps_the_heldout_set(quick_run):
    """Decontamination: what was dropped is recorded and counted, and nothing in the ledger matches."""
    cfg = load_config("quick")
    held = [p.prompt for d in range(1, cfg.eval.max_difficulty + 1)
            for p in problems(get_task(cfg.task), d, "heldout", cfg.eval.problems_per_difficulty)]
    index = HeldoutIndex(held, cfg.monitors.ngram, cfg.monitors.ngram_overlap)
    assert not [q for (q,) in table(quick_run, "select prompt from problems") if index.hit(q)]
    dropped = 0
    for cycle in range(1, cfg.loop.cycles + 1):
        (m,) = table(quick_run, f"select metrics_json from metrics where cycle = {cycle} and stage = 'propose'")[0]
        m = json.loads(m)
        assert m["checked"] == m["problems"] + len(m["contaminated_ids"])
        assert all(index.hit(problem(get_task("sort"), int(i.split("/")[2]), "train", int(i.split("/")[3])).prompt)
                   for i in m["contaminated_ids"])
        (value,) = table(quick_run, f"select value_json from monitors where cycle = {cycle} and "
                                    "monitor = 'decontamination'")[0]
        assert json.loads(value)["problems_dropped"] == m["contaminated"]
        dropped += len(m["contaminated_ids"])
    assert dropped  # sort at length 4 repeats held-out strings by chance: some are dropped, none alert


def test_export_writes_only_kept_self_labelled_data(quick_run, tmp_path):
    out = tmp_path / "accepted.jsonl"
    rsi("export", str(quick_run), "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    distinct = table(quick_run, "select count(*) from (select distinct p.prompt, l.answer from labels l"
                                " join problems p on p.id = l.problem_id where l.kept = 1)")[0][0]
    assert len(rows) == distinct > 0  # every kept (prompt, answer) once, even if kept in two cycles
    assert len({(r["prompt"], r["completion"]) for r in rows}) == len(rows)
    assert all(r["difficulty"] > 3 or r["source"] == "model" for r in rows)


def test_settings_that_cannot_work_well_are_reported_before_and_after_cycle_0(tmp_path):
    """Not errors, but said plainly: a monitor threshold inside an unchanged model's noise (at the
    start), a labelled range the base did not learn and difficulties with too few distinct
    held-out problems for the gate (in the cycle 0 summary, and recorded)."""
    run = tmp_path / "notes"
    out = rsi("run", "quick", "--run-dir", str(run), "--set", "loop.cycles=0", "--set", "base.steps=20",
              "--set", "gate.min_problems=60", "--set", "monitors.max_length_ratio=1.01").stdout
    text = " ".join(out.split())
    assert "warning: config key 'monitors.max_length_ratio' is 1.01" in text and "alert on noise" in text
    assert "note: the base model did not learn all of its labelled range 1-3 in base.steps=20" in text
    assert "too few distinct held-out problems for the gate at difficulty 4 (49), difficulty 5 (50)" in text
    assert "gate.min_problems is 60 (of eval.problems_per_difficulty=50 items, repeats count once)" in text
    (detail,) = table(run, "select detail_json from events where kind = 'warning'")[0]
    assert len(json.loads(detail)["notes"]) == 2
    assert json.loads(rsi("status", str(run), "--json").stdout)["notes"] == json.loads(detail)["notes"]


def test_run_dir_holding_another_run_is_refused_and_untouched(quick_run):
    before = (quick_run / "ledger.sqlite").stat().st_mtime_ns, table(quick_run, "select count(*) from samples")
    out = rsi("run", "quick", "--run-dir", str(quick_run), "--set", "seed=7", check=False)
    assert out.returncode != 0 and "already holds run" in out.stderr and "Traceback" not in out.stderr
    assert table(quick_run, "select count(*) from samples") == before[1]


def test_sigkill_inside_stages_then_resume_equals_the_uninterrupted_run(short_run, tmp_path):
    """Fault injection (the CI subset; benchmarks/fault_injection.py runs 50+ points): one run killed
    with SIGKILL inside base, generate, train and evaluate (on the stage's own progress, not on a clock
    that load stretches) and inside the commits of the stages too short to hit that way (propose, label,
    gate: every row written, none committed), resumed after each, ends with the uninterrupted run's
    ledger rows (none lost or duplicated) and champion weights."""
    run = tmp_path / "killed"
    stages = reference_stages(short_run)
    assert len(stages) == 14
    at = (0, 2, 3, 4, 5, 7, 12)
    hows = ["progress", "commit", "progress", "commit", "progress", "commit", "progress"]
    kills = kill_chain(SHORT, run, stages, [stages[i] for i in at], random.Random(0), how=hows)
    assert [(k.cycle, k.stage, k.stages_done) for k in kills] == [
        (0, "base", 0), (1, "propose", 2), (1, "generate", 3), (1, "label", 4), (1, "train", 5), (1, "gate", 7),
        (2, "evaluate", 12)]
    assert_same_run(run, short_run)


def assert_same_run(run: Path, reference: Path) -> None:
    """Same rows in every ledger table (bar times and events) and the same champion weights as `reference`."""
    assert differences(fingerprint(run), fingerprint(reference)) == []
    assert (run / "champion").read_text() == (reference / "champion").read_text()
    sha = [json.loads(rsi("status", str(r), "--json").stdout)["champion_weights_sha256"] for r in (run, reference)]
    assert sha[0] == sha[1] and len(sha[0]) == 64


def test_sigterm_stops_at_a_stage_boundary_and_resume_finishes_the_same_run(short_run, tmp_path):
    run = tmp_path / "terminated"
    proc = subprocess.Popen([*RSI, "run", *SHORT, "--run-dir", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (
            (run / "state.json").exists() and table(run, "select 1 from stages where cycle = 1 and stage = 'propose'")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 3, stderr
    assert "SIGTERM received" in stderr and f"rsi resume {run}" in stderr and "Traceback" not in stderr
    (kind, detail), = table(run, "select kind, detail_json from events where kind != 'parts'")
    stop = json.loads(detail)
    assert kind == "stop" and stop["reason"] == "SIGTERM received"
    done = table(run, "select count(*) from stages")[0][0]
    assert stop["stages_done"] == done < len(table(short_run, "select 1 from stages"))
    assert json.loads(rsi("status", str(run), "--json").stdout)["stopped"]["before"] == stop["before"]
    rsi("resume", str(run))
    assert json.loads(rsi("status", str(run), "--json").stdout)["stopped"] is None
    assert_same_run(run, short_run)


def test_a_spent_budget_or_a_stop_file_stops_the_run_until_resumed_with_more(short_run, tmp_path):
    run = tmp_path / "budget"
    out = rsi("run", *SHORT, "--run-dir", str(run), "--set", "budget.generated_tokens=2000", check=False)
    assert out.returncode == 3 and "budget.generated_tokens is spent" in out.stderr, out.stderr
    assert (run / "report.html").is_file()
    done = table(run, "select count(*) from stages")[0][0]
    again = rsi("resume", str(run), check=False)  # still spent: stops before doing anything
    assert again.returncode == 3 and table(run, "select count(*) from stages")[0][0] == done
    frozen = rsi("resume", str(run), "--set", "train.lr=1", check=False)
    assert frozen.returncode == 2 and "'train.lr=1'" in frozen.stderr and "frozen" in frozen.stderr
    (run / "STOP").touch()
    stopped = rsi("resume", str(run), "--set", "budget.generated_tokens=null", check=False)
    assert stopped.returncode == 3 and "STOP was found" in stopped.stderr and not (run / "STOP").exists()
    (run / "STOP").touch()  # left from before the last stage, say: removed with a note, not obeyed
    os.utime(run / "STOP", (time.time() - 3600, time.time() - 3600))
    finished = rsi("resume", str(run))  # the raised limit was kept from the resume before
    assert "left from an earlier session" in finished.stdout and not (run / "STOP").exists()
    kinds = [k for (k,) in table(run, "select kind from events order by rowid")]
    # where the run's parts came from (at start), the three stops, the raised limit, and the end of the loop
    assert kinds == ["parts", "stop", "stop", "resume", "stop", "end"]
    st = json.loads(rsi("status", str(run), "--json").stdout)
    assert st["budget"]["generated_tokens"] is None and st["state"] == "finished"
    assert_same_run(run, short_run)


def test_corrupted_checkpoint_stops_resume_with_a_clear_error(tmp_path):
    run = tmp_path / "corrupt"
    start_and_kill_after(run, 0, "evaluate", "base.steps=50")  # a base to corrupt: how good it is does not matter
    weights = run / "models" / "cycle-0000" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    stages_before = table(run, "select cycle, stage from stages order by rowid")
    out = rsi("resume", str(run), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model.safetensors" in out.stderr and "sha256" in out.stderr
    after = table(run, "select cycle, stage from stages order by rowid")
    assert after[: len(stages_before)] == stages_before  # nothing recorded was lost
    assert (1, "train") not in after  # the stage that needs the corrupted weights never committed


def test_refresh_mode_trains_a_fresh_base_on_all_verified_data(tmp_path):
    run = tmp_path / "refresh"
    rsi("run", "quick", "--run-dir", str(run), "--set", "loop.mode=refresh", "--set", "loop.cycles=1",
        "--set", "base.steps=200")
    manifest = json.loads((run / "models" / "cycle-0001" / "manifest.json").read_text())
    assert manifest["meta"]["init"] == "scratch"
    seqs = table(run, "select train_sequences from stages where cycle = 1 and stage = 'train'")[0][0]
    assert seqs == 200 * 128  # a refresh spends the base's budget, not a cycle's


def test_friends_vote_pools_samples_of_independently_trained_models(tmp_path):
    run = tmp_path / "friends"
    rsi("run", "quick", "--run-dir", str(run), "--set", "label.labeler=vote", "--set", "label.friends=1",
        "--set", "loop.cycles=1", "--set", "base.steps=200", "--set", "train.steps=50")
    models = run / "models"
    for name in ("cycle-0000", "friend1-0000", "cycle-0001", "friend1-0001"):
        assert (models / name / "manifest.json").is_file(), name
    assert json.loads((models / "friend1-0001" / "manifest.json").read_text())["meta"]["init"] == "friend1-0000"
    base = {f.name: f.read_bytes() for f in (models / "cycle-0000").glob("*.safetensors")}
    friend = {f.name: f.read_bytes() for f in (models / "friend1-0000").glob("*.safetensors")}
    assert base.keys() == friend.keys() and base != friend  # independently initialised and trained
    n = 4  # quick's generate.samples_per_problem
    by_model = dict(table(run, "select model, group_concat(distinct sample_index) from samples group by model"))
    assert {int(i) for i in by_model["cycle-0000"].split(",")} == set(range(n))
    assert {int(i) for i in by_model["friend1-0000"].split(",")} == set(range(n, 2 * n))
    # the vote counts both models' samples of a problem: "majority 7/8", "no majority: ... 3/8 < 60%"
    reasons = [r for (r,) in table(run, "select reason from labels where reason like '%majority%'")]
    assert reasons and all(f"/{2 * n}" in r for r in reasons)
    assert table(run, "select train_sequences from stages where cycle = 0 and stage = 'base'")[0][0] == 2 * 200 * 128


def test_grpo_in_the_loop_records_its_steps_and_reports_them(tmp_path):
    run = tmp_path / "grpo"
    rsi("run", "quick", "--run-dir", str(run), "--set", "loop.cycles=1", "--set", "base.steps=200",
        "--set", "train.steps=0", "--set", "grpo.steps=3", "--set", "grpo.prompts_per_step=4",
        "--set", "grpo.group_size=4", "--set", "grpo.beta=0.05")
    meta = json.loads((run / "models" / "cycle-0001" / "manifest.json").read_text())["meta"]
    assert meta["grpo_steps"] == 3 and meta["sft"] is False
    (steps_json,) = table(run, "select metrics_json from metrics where stage = 'grpo'")[0]
    steps = json.loads(steps_json)["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:
        assert s["samples"] == 16 and 0 <= s["reward/accuracy/mean"] <= 1 and s["kl"] is not None
    train_cost = table(run, "select generated_tokens, train_sequences from stages where cycle = 1 and stage = 'train'")
    assert train_cost[0][0] == sum(s["generated_tokens"] for s in steps) and train_cost[0][1] > 0
    assert "<h2>GRPO</h2>" in (run / "report.html").read_text()
    assert all(0 <= s["verified_mean"] <= 1 and 0 <= s["unverified_reward_share"] <= 1 for s in steps)
    (value,) = table(run, "select value_json from monitors where cycle = 1 and monitor = 'reward_hacking'")[0]
    assert json.loads(value)["steps"] == 3


def test_label_audit_below_its_floor_adds_no_self_labels(tmp_path):
    """`vote` labels (no ground truth) below `monitors.label_floor` (default 70 %): a lax vote with no
    format filter, by a model that saw labels up to length 2 only, keeps many wrong answers; the
    cycle then keeps none and says why."""
    run = tmp_path / "audit"
    out = rsi("run", "quick", "--run-dir", str(run), "--set", "label.labeler=vote",
              "--set", "label.vote_threshold=0.25", "--set", "filter.well_formed=false", "--set", "loop.cycles=1",
              "--set", "base.steps=200", "--set", "seed_data.max_difficulty=2")
    assert "monitor label_audit:" in out.stdout
    assert table(run, "select count(*) from labels where kept = 1") == [(0,)]
    dropped = table(run, "select count(*) from labels where reason like 'label audit below floor (was: majority%'")
    assert dropped[0][0] > 0
    st = json.loads(rsi("status", str(run), "--json").stdout)
    audit = st["monitors"]["label_audit"]
    assert audit["alert"] and audit["value"]["accuracy"] < 0.7 and audit["value"]["kept"] == dropped[0][0]
    assert st["gates"][0]["reason"].startswith("no candidate")


def test_a_vetoed_promotion_says_so_and_a_person_can_overrule_it(tmp_path):
    """With GRPO and a hair-trigger length-drift threshold the monitor alerts (the answers' length
    relative to the reference moves a little between the cycle's first and last steps); the
    candidates the gate would promote are rolled back, the reason says what the gate would have
    done, and `rsi review` overrules the latest."""
    run = tmp_path / "drift"
    rsi("run", "quick", "--run-dir", str(run), "--set", "monitors.max_length_ratio=1.0001", "--set", "loop.cycles=1",
        "--set", "grpo.steps=6")
    vetoed = table(run, "select cycle, reason from gates where promote = 0 order by cycle")
    assert vetoed and all(r.startswith("rolled back by a reward-hacking alert although the gate would have promoted "
                                       "it (gain +") and "answer length drifted" in r for _, r in vetoed)
    last = vetoed[-1][0]
    st = json.loads(rsi("status", str(run), "--json").stdout)
    assert st["monitors"]["reward_hacking"]["alert"] and st["champion"] != f"cycle-{last:04d}"
    shown = json.loads(rsi("review", str(run), "--json").stdout)
    assert (shown["kind"], shown["cycle"], shown["candidate"]) == ("overrule", last, f"cycle-{last:04d}")
    out = rsi("review", str(run), "--approve", "--by", "carol", "--why", "the answers fit the problems")
    assert "it is the champion now" in out.stdout
    st = json.loads(rsi("status", str(run), "--json").stdout)
    assert st["champion"] == f"cycle-{last:04d}" and st["gates"][last - 1]["promote"]
    assert st["gates"][last - 1]["reason"].endswith("overruled in review by carol: the answers fit the problems")
    assert (run / "champion").read_text().strip() == f"cycle-{last:04d}"


def test_require_approval_pauses_every_promotion_until_a_person_reviews_it(quick_run, tmp_path):
    """quick promotes in cycles 1 and 2. With gate.require_approval the run stops before each such
    promotion; resuming without a review stops again; a rejection rolls back with the reviewer's
    reason, an approval promotes; everything else equals the uninterrupted run."""
    run = tmp_path / "approval"
    stopped = rsi("run", "quick", "--run-dir", str(run), "--set", "gate.require_approval=true",
                  "--set", "loop.cycles=2", check=False)
    assert stopped.returncode == 3 and "awaits review" in stopped.stderr
    assert table(run, "select count(*) from gates") == [(0,)]
    assert rsi("resume", str(run), check=False).returncode == 3  # no review, no promotion
    assert table(run, "select count(*) from gates") == [(0,)]
    shown = json.loads(rsi("review", str(run), "--json").stdout)
    assert (shown["cycle"], shown["candidate"], shown["champion"]) == (1, "cycle-0001", "cycle-0000")
    assert shown["accuracy"]["3"]["candidate"] > shown["accuracy"]["3"]["champion"]
    assert {m["monitor"] for m in shown["monitors"]} == set(MONITORS)
    assert shown["new_training_data"]["kept"] > 0 and shown["new_training_data"]["sample"]
    assert "candidate cycle-0001 against champion cycle-0000" in rsi("review", str(run)).stdout
    assert rsi("review", str(run), "--reject", check=False).returncode == 2  # a ruling needs --why
    rsi("review", str(run), "--reject", "--by", "alice", "--why", "too little new data")
    assert rsi("resume", str(run), check=False).returncode == 3  # cycle 2's candidate awaits review now
    (promote, reason) = table(run, "select promote, reason from gates where cycle = 1")[0]
    assert not promote and reason.startswith("rejected in review by alice: too little new data")
    assert rsi("review", str(run), "--json", check=False).returncode == 0
    rsi("review", str(run), "--approve", "--by", "bob", "--why", "gains above the frontier")
    rsi("resume", str(run))
    (promote, reason) = table(run, "select promote, reason from gates where cycle = 2")[0]
    assert promote and reason.endswith("approved in review by bob: gains above the frontier")
    st = json.loads(rsi("status", str(run), "--json").stdout)
    assert st["champion"] == "cycle-0002" and st["stopped"] is None
    assert rsi("review", str(run), check=False).returncode == 2  # nothing awaits review any more


def test_people_add_problems_that_join_the_next_cycle_marked_human(short_run, tmp_path):
    """A finished two-cycle run (a copy of the fault tests' reference) gets human problems, then one more cycle."""
    run = tmp_path / "human"
    shutil.copytree(short_run, run)
    sort = get_task("sort")
    mine = problems(sort, 3, "train", 6, start=900_000_000)  # far from the seed data and proposals
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": mine[0].prompt, "answer": mine[0].answer, "difficulty": 3}) + "\n"
                   + json.dumps({"prompt": "s:123=", "answer": "123", "difficulty": 99}) + "\n")
    out = rsi("add", str(run), str(bad), check=False)
    assert out.returncode == 2 and f"{bad}:2" in out.stderr and "'difficulty'" in out.stderr
    held = problems(sort, 4, "heldout", 1)[0]
    bad.write_text(json.dumps({"prompt": held.prompt, "answer": held.answer, "difficulty": 4}) + "\n")
    out = rsi("add", str(run), str(bad), check=False)
    assert out.returncode == 2 and f"{bad}:1" in out.stderr and "held-out" in out.stderr
    assert table(run, "select count(*) from problems where source = 'human'") == [(0,)]  # nothing half-added
    good = tmp_path / "mine.jsonl"
    good.write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer, "difficulty": 3}) + "\n"
                            for p in mine))
    assert "added 6 human problems to cycle 3" in rsi("add", str(run), str(good)).stdout
    rsi("resume", str(run), "--set", "loop.cycles=3")
    human = table(run, "select id, cycle, split, prompt from problems where source = 'human'")
    assert [(c, split) for _, c, split, _ in human] == [(3, "human")] * 6
    assert [q for *_, q in human] == [p.prompt for p in mine]
    ids = tuple(i for i, *_ in human)
    assert table(run, f"select count(*) from samples where problem_id in {ids}") == [(6 * 4,)]
    kept = table(run, f"select count(*) from labels where kept = 1 and problem_id in {ids}")[0][0]
    out_file = tmp_path / "accepted.jsonl"
    rsi("export", str(run), "--out", str(out_file))
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sum(r["source"] == "human" for r in rows) == kept and kept > 0  # d3 sort: the champion solves some
    assert {r["prompt"] for r in rows if r["source"] == "human"} <= {p.prompt for p in mine}


def test_a_local_hf_checkpoint_runs_the_loop_with_lora(tmp_path):
    """kind 'hf' end to end on a small Qwen2 directory (fast): no base training, LoRA merged into checkpoints."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rsi.engine.tokenizer import build_char_tokenizer
    from rsi.tasks import get_task

    tok = build_char_tokenizer(get_task("sort").alphabet)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "qwen")
    tok.save_pretrained(tmp_path / "qwen")
    run = tmp_path / "hf"
    rsi("run", "quick", "--run-dir", str(run), "--set", "model.kind=hf", "--set", f"model.path={tmp_path / 'qwen'}",
        "--set", "model.chat_template=false", "--set", "model.lora={r: 4}", "--set", "base.steps=0",
        "--set", "loop.cycles=1", "--set", "train.steps=5", "--set", "grpo.steps=2", "--set", "grpo.group_size=2",
        "--set", "eval.max_difficulty=3", "--set", "loop.max_difficulty=3")
    base = json.loads((run / "models" / "cycle-0000" / "manifest.json").read_text())["meta"]
    assert base["init"] == str(tmp_path / "qwen")
    assert table(run, "select count(*) from stages where stage = 'base'")[0][0] == 1
    assert json.loads(table(run, "select metrics_json from metrics where stage = 'base'")[0][0])["final_loss"] is None
    weights = json.loads((run / "models" / "cycle-0001" / "config.json").read_text())
    assert weights["model_type"] == "qwen2"
    assert not list((run / "models" / "cycle-0001").glob("adapter_*"))  # merged: a plain checkpoint
    assert len(json.loads(table(run, "select metrics_json from metrics where stage = 'grpo'")[0][0])["steps"]) == 2


def test_smollm2_arithmetic_shortened_runs_grpo_on_the_real_model(tmp_path):
    """The real-model config, cut to one cycle of two GRPO steps: the GGUF loads, rewards are logged."""
    run = tmp_path / "smollm2"
    overrides = ["loop.cycles=1", "grpo.steps=2", "grpo.prompts_per_step=2", "grpo.group_size=4",
                 "grpo.max_new_tokens=24", "propose.problems_per_difficulty=4", "curriculum.width=1",
                 "generate.samples_per_problem=1",
                 "eval.problems_per_difficulty=8", "eval.max_difficulty=1"]
    rsi("run", "smollm2-arithmetic", "--run-dir", str(run), *[a for o in overrides for a in ("--set", o)])
    steps = json.loads(table(run, "select metrics_json from metrics where stage = 'grpo'")[0][0])["steps"]
    assert [s["step"] for s in steps] == [1, 2]
    for s in steps:
        assert {"reward/accuracy/mean", "reward/format/mean", "reward/tags/mean"} <= set(s) and s["samples"] == 8
    samples = table(run, "select completion from samples")
    assert samples and all(c.startswith("<think>") for (c,) in samples)  # the response prefix starts every answer
    assert "<h2>GRPO</h2>" in (run / "report.html").read_text()
    (value,) = table(run, "select value_json from monitors where cycle = 1 and monitor = 'reward_hacking'")[0]
    assert json.loads(value)["steps"] == 2


def test_code_io_loop_grades_through_the_sandbox(sandbox, tmp_path):
    """A cycle on `code_io`: labels, GRPO rewards and evaluation all run answers in the sandbox."""
    run = tmp_path / "code"
    rsi("run", "quick", "--run-dir", str(run), "--set", "task=code_io", "--set", "loop.cycles=1",
        "--set", "seed_data.max_difficulty=2", "--set", "eval.max_difficulty=3", "--set", "loop.max_difficulty=3",
        "--set", "base.steps=150",
        "--set", "train.steps=20", "--set", "propose.problems_per_difficulty=20",
        "--set", "eval.problems_per_difficulty=20", "--set", "grpo.steps=2", "--set", "grpo.prompts_per_step=4",
        "--set", "grpo.group_size=4")
    reasons = [r for (r,) in table(run, "SELECT reason FROM labels")]
    assert any("pass" in r or "no result printed" in r for r in reasons)  # graded by running code
    # abductions (find x with f(x) = y) are decided by running f on the answer: re-decide them here, running the
    # task's own program (not the model's) in this process, and compare with the label's recorded verdict
    abductions = table(run, "SELECT p.prompt, l.answer, l.audit_correct FROM labels l JOIN problems p "
                            "ON p.id = l.problem_id WHERE p.prompt LIKE '%#f(?)=%'")
    decided = 0
    for prompt, answer, correct in abductions:
        source, _, target = prompt.rpartition("\n#f(?)=")
        if not re.fullmatch(r"-?\d+", answer.strip()):
            assert not correct
            continue
        scope: dict = {}
        exec(source, scope)
        assert bool(correct) == (scope["f"](int(answer)) == int(target)), (prompt, answer, correct)
        decided += 1
    assert decided > 0
    assert table(run, "SELECT count(*) FROM gates") == [(1,)]
    assert table(run, "SELECT count(*) FROM metrics WHERE stage = 'grpo'")[0][0] > 0


def test_self_play_records_proposals_with_provenance_and_trains_the_proposer(sandbox, tmp_path):
    """`selfplay`: the base model writes problems, the executor keeps the valid ones, both roles train."""
    run = tmp_path / "selfplay"
    rsi("run", "selfplay", "--run-dir", str(run), "--set", "loop.cycles=1", "--set", "base.steps=250",
        "--set", "loop.max_difficulty=3", "--set", "eval.max_difficulty=3", "--set", "eval.problems_per_difficulty=20",
        "--set", "propose.problems_per_difficulty=16", "--set", "train.steps=10", "--set", "grpo.steps=2",
        "--set", "propose.updates=2")
    proposals = table(run, "SELECT proposer, valid, reason, problem_ids FROM proposals")
    assert len(proposals) == 16 * 3 and {p[0] for p in proposals} == {"cycle-0000"}
    valid = [json.loads(ids) for _, ok, _, ids in proposals if ok]
    assert valid, "the base model, trained on generated programs, wrote no valid proposal"
    # a deduction and an abduction problem each, less those overlapping a held-out prompt
    assert all(len(ids) in (1, 2) for ids in valid)
    assert all(ok == reason.startswith("kept") for _, ok, reason, _ in proposals)
    problems = dict(table(run, "SELECT id, source FROM problems"))
    assert sorted(problems) == sorted(i for ids in valid for i in ids)
    propose = json.loads(table(run, "SELECT metrics_json FROM metrics WHERE stage = 'propose'")[0][0])
    assert propose["checked"] == len(problems) + len(propose["contaminated_ids"])
    assert not set(propose["contaminated_ids"]) & set(problems)
    assert set(problems.values()) == {"cycle-0000"}  # provenance: the proposing checkpoint
    assert table(run, "SELECT count(*) FROM samples")[0][0] == 4 * len(problems)
    steps = json.loads(table(run, "SELECT metrics_json FROM metrics WHERE stage = 'proposer'")[0][0])["steps"]
    assert steps[0]["proposals"] == 48 and len(steps) in (1, 2)  # 1: every reward equal, nothing to learn
    assert table(run, "SELECT count(*) FROM gates") == [(1,)]


def test_smollm2_selfplay_shortened_proposes_and_solves_in_its_own_formats(sandbox, tmp_path):
    """The real-model self-play config, cut to one small cycle: proposals start with the proposer's
    prefix, answers with the solver's `<answer>` prefix, and the problems keep the task's bare form."""
    run = tmp_path / "smollm2-selfplay"
    overrides = ["loop.cycles=1", "propose.problems_per_difficulty=16", "generate.samples_per_problem=2",
                 "grpo.steps=1", "grpo.prompts_per_step=2", "grpo.group_size=2", "propose.updates=1",
                 "eval.problems_per_difficulty=4", "eval.max_difficulty=1"]
    rsi("run", "smollm2-selfplay", "--run-dir", str(run), *[a for o in overrides for a in ("--set", o)])
    proposals = table(run, "SELECT completion, valid, problem_ids FROM proposals")
    assert len(proposals) == 16 and all(c.startswith("def f(x):\n    ") for c, _, _ in proposals)
    made = [i for _, ok, ids in proposals if ok for i in json.loads(ids)]
    assert made, "SmolLM2 wrote no valid proposal in 16"
    prompts = dict(table(run, "SELECT id, prompt FROM problems"))
    assert sorted(prompts) == sorted(made) and all(p.startswith("def f(x):\n") for p in prompts.values())
    samples = [c for (c,) in table(run, "SELECT completion FROM samples")]
    assert len(samples) == 2 * len(made) and all(c.startswith("<answer>") for c in samples)
    assert table(run, "SELECT count(*) FROM metrics WHERE stage = 'proposer'") == [(1,)]
