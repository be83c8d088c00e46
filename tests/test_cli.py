"""Bad input through the real command line: one paragraph, non-zero exit, nothing recorded is touched."""

import sqlite3
import subprocess
import sys

import pytest

from rsi.ledger import Ledger

RSI = [sys.executable, "-m", "rsi.cli"]


def rsi(*args):
    return subprocess.run([*RSI, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, expected", [
    (["--set", "task=division"], "unknown task (got 'division')"),
    (["--set", "train.lrr=1"], "train.lrr"),
    (["--set", "seed_data.max_difficulty=20", "--set", "loop.max_difficulty=10"], "seed_data.max_difficulty"),
    (["--set", "label.labeler=oracle"], "label.labeler"),
    (["no-such-config"], "no-such-config"),
])
def test_bad_config_fails_before_any_work(tmp_path, args, expected):
    """In process (a subprocess costs 6 s of imports a case); the first case also as a real process."""
    from typer.testing import CliRunner

    from rsi.cli import app

    run = tmp_path / "run"
    out = CliRunner().invoke(app, ["run", *args, "--run-dir", str(run)])
    assert out.exit_code == 2, out.output
    assert expected in " ".join(out.output.split()), out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)  # an RsiError, shown as one paragraph
    assert not run.exists()
    if args[0] == "--set" and args[1] == "task=division":
        real = rsi("run", *args, "--run-dir", str(run))
        assert real.returncode == 2 and expected in real.stderr and "Traceback" not in real.stderr
        assert not run.exists()


def test_newer_ledger_schema_is_refused_untouched(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with Ledger(run / "ledger.sqlite") as ledger:
        ledger.set_run("quick", {"name": "quick"})
    con = sqlite3.connect(run / "ledger.sqlite")
    con.execute("update meta set value = '99' where key = 'schema_version'")
    con.commit()
    con.close()
    before = (run / "ledger.sqlite").read_bytes()
    for cmd in (["resume", str(run)], ["status", str(run)]):
        out = rsi(*cmd)
        assert out.returncode == 2 and "schema" in out.stderr and "Traceback" not in out.stderr
    assert (run / "ledger.sqlite").read_bytes() == before


def test_missing_run_dir_is_a_clear_error(tmp_path):
    out = rsi("status", str(tmp_path / "nope"))
    assert out.returncode == 2 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_tasks_lists_every_family():
    out = rsi("tasks")
    assert out.returncode == 0
    for name in ("addition", "multiplication", "copy", "reverse", "sort"):
        assert name in out.stdout
