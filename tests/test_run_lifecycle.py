"""A run survives its users: one process per run, signals at any moment, people's rows checked at
the door and withdrawn, read-only runs readable, and every command's errors one line, never a
traceback, with the user's text printed as written."""

from __future__ import annotations

import json
import os
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
from rsi.errors import RunDirError
from rsi.ledger import Ledger
from rsi.loop import resume
from rsi.monitors import HeldoutIndex
from rsi.run.human import add_problems, read_rows, withdraw_problems
from rsi.run.runlock import hold
from rsi.tasks import get_task, problems
from rsi.tasks.jsonl import TaskFileError

RSI = [sys.executable, "-m", "rsi.cli"]
NO_INDEX = HeldoutIndex([], 8, 0.5)


def cli(*args):
    out = CliRunner().invoke(app, [str(a) for a in args])
    assert out.exception is None or isinstance(out.exception, SystemExit), (args, out.exception, out.output)
    assert "Traceback" not in out.output, out.output
    return out


@pytest.fixture
def new_run(tmp_path):
    """A run that has started (its ledger and config) but done no stage: `quick`, task sort."""
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    with Ledger(run / "ledger.sqlite") as ledger:
        ledger.set_run("quick", load_config("quick").model_dump(mode="json"))
    return run


def rows(path: Path, *items: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


# ---- one process per run -------------------------------------------------------------------

def test_a_second_process_is_refused_at_once_naming_the_holder_and_kill_9_frees_the_run(new_run):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom rsi.run.runlock import hold\n"
                               f"with hold({str(new_run)!r}, 'rsi resume (test)'):\n"
                               "    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(RunDirError, match=rf"in use by process {holder.pid} \(rsi resume \(test\)"):
            resume(new_run)
        assert time.monotonic() - t0 < 5  # at once, not after a stage
        out = cli("add", new_run, rows(new_run.parent / "x.jsonl", {"prompt": "s:21=", "answer": "12"}))
        assert out.exit_code == 2 and f"process {holder.pid}" in out.output
    finally:
        holder.kill()
        holder.wait()
    with hold(new_run):  # the kernel released it with the process
        pass


# ---- signals -------------------------------------------------------------------------------

def caught(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler for `sig` (the SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def start_and_signal(run: Path, *signals: int) -> subprocess.CompletedProcess:
    """`rsi run quick`, signalled as soon as it catches signals (before torch is even imported)."""
    proc = subprocess.Popen([*RSI, "run", "quick", "--run-dir", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not caught(proc.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.002)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.3)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_signal_in_the_first_moments_is_a_clean_stop_and_a_second_one_stops_at_once(tmp_path):
    done = start_and_signal(tmp_path / "early", signal.SIGTERM)
    assert done.returncode == 3, done.stderr
    assert "SIGTERM received" in done.stderr and "stopped before cycle 0 base" in done.stderr
    assert "Traceback" not in done.stderr
    twice = start_and_signal(tmp_path / "twice", signal.SIGINT, signal.SIGINT)
    assert twice.returncode == 130, twice.stderr
    assert "interrupted: SIGINT: stopped at once" in twice.stderr and "Traceback" not in twice.stderr


def test_a_second_signal_that_breaks_an_import_is_still_an_interrupt(capsys):
    import typer

    from rsi.cli import _commands
    from rsi.run.stopping import _signals

    @_commands
    def command():
        _signals.forced = signal.SIGINT  # what the handler records as it raises Interrupted mid-import
        raise ModuleNotFoundError("Could not import module 'PreTrainedModel'")

    with pytest.raises(typer.Exit) as e:
        command()
    assert e.value.exit_code == 130 and _signals.forced is None

    @_commands
    def unrelated():
        raise ModuleNotFoundError("no module named 'x'")

    with pytest.raises(ModuleNotFoundError):  # with no second signal, an error is not an interrupt
        unrelated()


# ---- people's rows -------------------------------------------------------------------------

@pytest.mark.parametrize("row, why", [
    ({"prompt": "hello world", "answer": "x", "difficulty": 3}, "outside the model's alphabet"),
    ({"prompt": "s:12=", "answer": "1 2", "difficulty": 2}, "outside the model's alphabet"),
    ({"prompt": "s:3=1", "answer": "13", "difficulty": 2}, "not in task 'sort''s format"),
    ({"prompt": "s:321=", "answer": "123", "difficulty": 2}, "the prompt is difficulty 3"),
    ({"prompt": "s:321=", "answer": "321", "difficulty": 3}, "'321' is wrong for this prompt"),
    ({"prompt": "s:321=", "answer": "123", "difficulty": 99}, "range 1..40"),
])
def test_rows_are_checked_as_the_task_would(tmp_path, row, why):
    sort = get_task("sort")
    path = rows(tmp_path / "mine.jsonl", {"prompt": "s:21=", "answer": "12", "difficulty": 2}, row)
    with pytest.raises(TaskFileError, match=rf"{path}:2: .*{why}"):
        read_rows(path, sort, NO_INDEX, sort.alphabet)


def test_a_missing_difficulty_is_read_from_the_prompt_or_asked_for(tmp_path):
    sort = get_task("sort")
    path = rows(tmp_path / "mine.jsonl", {"prompt": "s:4312=", "answer": "1234"})
    assert read_rows(path, sort, NO_INDEX) == [("s:4312=", "1234", 4)]
    words = get_task("word_arithmetic")  # cannot read a prompt's difficulty back
    item = words.example()
    path = rows(tmp_path / "words.jsonl", {"prompt": item.prompt, "answer": item.answer})
    with pytest.raises(TaskFileError, match=r"words.jsonl:1: key 'difficulty' is missing"):
        read_rows(path, words, NO_INDEX)
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b'{"prompt": "s:1=", "answer": "1"}\n\xff\xfe\x00garbage\n')
    with pytest.raises(TaskFileError, match=r"binary.bin:2: not UTF-8 text \(byte 0xff at column 1\)"):
        read_rows(binary, sort, NO_INDEX)


def test_adding_a_file_twice_adds_its_rows_once_and_withdraw_takes_them_back(new_run, tmp_path):
    mine = problems(get_task("sort"), 3, "train", 4, start=900_000_000)
    path = rows(tmp_path / "mine.jsonl", *({"prompt": p.prompt, "answer": p.answer, "difficulty": 3} for p in mine))
    cycle, made, known = add_problems(new_run, path)
    assert (cycle, len(made), known) == (1, 4, 0)
    again = cli("add", new_run, path)
    said = " ".join(again.output.split())
    assert again.exit_code == 0 and "added 0 human problems" in said and "(4 rows the run already had" in said
    other = rows(tmp_path / "other.jsonl", {"prompt": "s:98=", "answer": "89"})
    assert len(add_problems(new_run, other)[1]) == 1
    assert withdraw_problems(new_run, path) == (4, 1)
    with Ledger(new_run / "ledger.sqlite", create=False) as ledger:
        assert [p.prompt for p in ledger.problems()] == ["s:98="]
        assert ledger.events("withdraw")[0]["detail"]["problems"] == [p.id for p in made]
    out = cli("withdraw", new_run, "--all")
    assert out.exit_code == 0 and "withdrew 1 human problems from cycle 1" in " ".join(out.output.split())
    assert cli("withdraw", new_run).exit_code == 2


# ---- read-only runs, bad paths, markup -------------------------------------------------------

def read_only(path: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run `argv` with `path` bind-mounted read-only over itself, in a mount namespace of its own."""
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(path), *argv],
                          capture_output=True, text=True, timeout=300)


def test_a_read_only_run_is_read_and_says_what_it_cannot_write(new_run, tmp_path):
    probe = read_only(new_run, "touch", str(new_run / "x"))
    if "Read-only file system" not in probe.stderr:
        if os.environ.get("CI"):
            raise AssertionError(f"cannot make a read-only mount here: {probe.stderr}")
        pytest.skip(f"no read-only bind mounts here: {probe.stderr.strip()}")
    before = {p.name: p.read_bytes() for p in new_run.iterdir() if p.is_file()}
    status = read_only(new_run, *RSI, "status", str(new_run), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["name"] == "quick"
    report = read_only(new_run, *RSI, "report", str(new_run))
    assert report.returncode == 2 and "not writable" in report.stderr and "--out" in report.stderr
    assert "Traceback" not in report.stderr
    elsewhere = read_only(new_run, *RSI, "export", str(new_run), "--out", str(tmp_path / "a.jsonl"))
    assert elsewhere.returncode == 0 and "wrote 0 rows" in elsewhere.stdout, elsewhere.stderr
    resumed = read_only(new_run, *RSI, "resume", str(new_run))
    assert resumed.returncode == 2 and "needs it to be a writable directory" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert {p.name: p.read_bytes() for p in new_run.iterdir() if p.is_file()} == before


def test_every_command_meets_bad_paths_and_files_with_one_line(new_run, tmp_path):
    a_file = rows(tmp_path / "file.jsonl", {"prompt": "s:1=", "answer": "1"})
    binary = tmp_path / "binary.bin"
    binary.write_bytes(bytes(range(256)))
    empty_ledger = tmp_path / "empty"
    empty_ledger.mkdir()
    (empty_ledger / "ledger.sqlite").write_bytes(b"")
    bad_paths = [tmp_path / "missing", a_file, binary, empty_ledger, tmp_path / "file.jsonl" / "below"]
    for bad in bad_paths:
        for args in (["status", bad], ["report", bad], ["export", bad], ["resume", bad], ["review", bad],
                     ["add", bad, a_file], ["withdraw", bad, "--all"], ["repair", bad], ["sandbox", "run", bad]):
            if args[0] == "sandbox" and bad in (a_file, binary):
                continue  # a program, if a strange one
            out = cli(*args)
            assert out.exit_code == 2 and out.output.startswith("error:"), (args, out.output)
        if bad != tmp_path / "missing":  # (a missing run directory is where a new run starts)
            out = cli("run", "quick", "--run-dir", bad)
            assert out.exit_code == 2 and out.output.startswith("error:"), (bad, out.output)
    for bad in (binary, tmp_path / "missing", tmp_path, empty_ledger / "ledger.sqlite"):
        out = cli("add", new_run, bad)
        assert out.exit_code == 2 and out.output.startswith("error:"), (bad, out.output)
    for bad in (binary, tmp_path):
        out = cli("run", bad)
        assert out.exit_code == 2 and out.output.startswith("error:"), (bad, out.output)
    out = cli("run", "quick", "--run-dir", a_file)
    assert "is a file, not a directory" in out.output


def test_text_in_brackets_is_printed_as_written(tmp_path):
    out = cli("run", "quick", "--set", "train.lr=-1", "--run-dir", tmp_path / "r")
    assert out.exit_code == 2 and "[set by override" in out.output, out.output
    run = tmp_path / "tür [v2] 🚀"
    out = cli("status", run)
    assert f"{run}" in " ".join(out.output.split()), out.output


def test_tables_exist_from_the_start_and_older_ledgers_gain_them_without_rewriting_rows(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.set_run("quick", {"name": "quick"})
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert {"events", "monitors", "proposals", "eval_answers"} <= tables
    con.executescript("drop table events; drop table monitors; drop table eval_answers;")
    before = con.execute("select * from run").fetchall()
    con.close()
    with Ledger(path, create=False, readonly=True) as ledger:  # a reader changes nothing
        assert ledger.events() == [] and ledger.readings() == []
    assert "events" not in {r[0] for r in sqlite3.connect(path).execute("select name from sqlite_master")}
    with Ledger(path, create=False) as ledger:
        assert ledger.events() == []
    con = sqlite3.connect(path)
    assert {"events", "monitors", "eval_answers"} <= {r[0] for r in con.execute("select name from sqlite_master")}
    assert con.execute("select * from run").fetchall() == before
    meta = dict(con.execute("select key, value from meta"))
    assert meta["rsi_version"] and meta["source_revision"]
    con.close()


def test_a_reward_that_raises_is_said_once_a_stage_with_its_first_error(tmp_path):
    from io import StringIO
    from types import SimpleNamespace

    from rich.console import Console

    from rsi.learn.rewards import load_reward, score
    from rsi.records import GrpoStep, RewardStats
    from rsi.stages.train import warn_reward_errors

    (tmp_path / "r.py").write_text("def broken(completions, **kw):\n    raise KeyError('no [such] column')\n")
    name = f"{tmp_path / 'r.py'}:broken"
    sort = get_task("sort")
    items = problems(sort, 2, "train", 3)
    logs = []
    for _ in range(2):  # two GRPO steps, every sample raising
        s = score([load_reward(name, 1.0)], [p.answer for p in items], items)
        assert s.errors[name] == 3 and s.first_errors[name] == "KeyError: 'no [such] column'"
        logs.append(GrpoStep(1, 0.0, samples=3, rewards={name: RewardStats(0.0, 0.0, 3, s.first_errors[name])}))
    console = Console(file=StringIO(), width=300)
    ctx = SimpleNamespace(cfg=SimpleNamespace(grpo=SimpleNamespace(rewards=[SimpleNamespace(fn=name)])),
                          console=console)
    warn_reward_errors(ctx, "cycle 2: grpo", logs)
    said = console.file.getvalue()
    assert said.count("warning:") == 1 and "raised on 6 of 6 samples in cycle 2: grpo (each scored 0" in said
    assert "KeyError: 'no [such] column'" in said


# ---- the files a run reads -----------------------------------------------------------------

def test_relative_paths_are_recorded_absolute_and_a_changed_file_is_refused_on_resume(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    (home / "mine.py").write_text("def short(completions, **kw):\n    return [-len(c) for c in completions]\n")
    monkeypatch.chdir(home)
    out = cli("run", "quick", "--run-dir", "r", "--set", "loop.cycles=0", "--set", "base.steps=5",
              "--set", "eval.problems_per_difficulty=4", "--set", "grpo.rewards=[{fn: accuracy}, {fn: mine.py:short}]")
    assert out.exit_code == 0, out.output
    run = home / "r"
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.run_info()["config"]["grpo"]["rewards"][1]["fn"] == f"{home / 'mine.py'}:short"
        assert ledger.events("inputs")[0]["detail"]["files"]["grpo.rewards[1].fn"]["path"] == str(home / "mine.py")
    monkeypatch.chdir(elsewhere)  # every later command, from another directory, reads the same file
    assert cli("status", run, "--json").exit_code == 0
    assert cli("resume", run).exit_code == 0
    (home / "mine.py").write_text("def short(completions, **kw):\n    return [len(c) for c in completions]\n")
    out = cli("resume", run)
    assert out.exit_code == 2 and "grpo.rewards[1].fn" in out.output and "changed (sha256" in out.output
    assert "--allow-changed" in out.output
    out = cli("resume", run, "--allow-changed")
    assert out.exit_code == 0 and "going on with new content" in out.output
    assert cli("resume", run).exit_code == 0  # the new content is now the recorded one
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        changes = [e["detail"] for e in ledger.events("inputs")]
    assert len(changes) == 2 and "grpo.rewards[1].fn" in changes[1]["changed"][0]
    (home / "mine.py").rename(home / "moved.py")  # status still reads the run; a resume refuses
    out = cli("status", run, "--json")
    assert out.exit_code == 0 and "rsi resume` would refuse" in json.loads(out.output)["notes"][-1]
    assert "grpo.rewards[1].fn" in json.loads(out.output)["notes"][-1]
    assert cli("resume", run).exit_code == 2


# ---- checkpoints checked on every read, and repaired -----------------------------------------

def test_a_corrupted_checkpoint_is_reported_by_every_reader_and_repair_retrains_it_byte_for_byte(tmp_path):
    from rsi.engine.manifest import MANIFEST
    from rsi.views.fingerprint import fingerprint

    run = tmp_path / "r"
    out = cli("run", "quick", "--run-dir", run, "--set", "loop.cycles=1", "--set", "base.steps=60",
              "--set", "train.steps=20", "--set", "eval.problems_per_difficulty=10",
              "--set", "propose.problems_per_difficulty=20")
    assert out.exit_code == 0, out.output
    st = json.loads(cli("status", run, "--json").output)
    weights = run / "models" / "cycle-0001" / "model.safetensors"
    manifest = json.loads((weights.parent / MANIFEST).read_text())
    # one digest: what sha256sum prints for the weights file, in the manifest, the ledger and status
    assert manifest["weights_sha256"] == manifest["files"]["model.safetensors"] == file_digest(weights)
    assert set(st["checkpoints"].values()) == {None} and len(st["checkpoints"]) == 2
    before = fingerprint(run)
    digests = {n: json.loads((run / "models" / n / MANIFEST).read_text())["weights_sha256"]
               for n in ("cycle-0000", "cycle-0001")}
    for name in digests:  # a flipped byte in each, the base first (cycle 1 trained from it)
        f = run / "models" / name / "model.safetensors"
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x01
        f.write_bytes(bytes(data))
    st = json.loads(cli("status", run, "--json").output)
    assert all("does not match the sha256" in (st["checkpoints"][n] or "") for n in digests)
    said = cli("status", run).output
    assert "0 of 2 match their manifests; 2 CORRUPTED" in said and f"rsi repair {run}" in " ".join(said.split())
    for args in (["report", run], ["export", run, "--out", tmp_path / "a.jsonl"]):
        out = cli(*args)
        assert out.exit_code == 0 and "checkpoint cycle-0001: " in out.output and "rsi repair" in out.output
    out = cli("repair", run)
    assert out.exit_code == 0, out.output
    assert " ".join(out.output.split()).count("equal to the recorded digest") == 2, out.output
    assert set(json.loads(cli("status", run, "--json").output)["checkpoints"].values()) == {None}
    after = fingerprint(run)
    assert after["champion_weights_sha256"] == before["champion_weights_sha256"]
    with Ledger(run / "ledger.sqlite", readonly=True) as ledger:
        assert [e["detail"]["checkpoint"] for e in ledger.events("repair")] == ["cycle-0000", "cycle-0001"]
    assert "nothing to repair" in cli("repair", run).output


def file_digest(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0]
