"""Experiment tracking (`track: [...]`): a run, stopped and resumed, read back with each tracker's
own reader (TensorBoard's event accumulator, MLflow's client on its local store, the offline W&B
run's files, trackio's local store); a tracker that fails mid-run; what is refused before a run."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from rsi import resolve
from rsi.errors import ConfigError
from rsi.track import Tracking
from rsi.views.status import status

pytestmark = pytest.mark.slow
RSI = [sys.executable, "-m", "rsi.cli"]
SMALL = ["eval.problems_per_difficulty=20", "propose.problems_per_difficulty=20", "eval.max_difficulty=6",
         "base.steps=300", "train.steps=40"]
ALL = "track=[tensorboard, mlflow, wandb, trackio]"


def _env(tmp: Path) -> dict:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp / "wb-config"),
            "WANDB_CACHE_DIR": str(tmp / "wb-cache"), "WANDB_DATA_DIR": str(tmp / "wb-data"),
            "TRACKIO_DIR": str(tmp / "trackio"), "MLFLOW_TRACKING_URI": "", "MLFLOW_ALLOW_FILE_STORE": "true"}


def _rsi(tmp: Path, *args) -> subprocess.CompletedProcess:
    out = subprocess.run([*RSI, *map(str, args)], capture_output=True, text=True, timeout=900, env=_env(tmp))
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A one-cycle run on every tracker, then resumed for a second cycle."""
    tmp = tmp_path_factory.mktemp("track")
    run = tmp / "run"
    _rsi(tmp, "run", "quick", "--run-dir", run, *[a for s in [*SMALL, "loop.cycles=1", ALL] for a in ("--set", s)])
    _rsi(tmp, "resume", run, "--set", "loop.cycles=2")
    return tmp, run


def _frontiers(run: Path) -> list[float]:
    return [float(status(run)["frontier_by_cycle"][str(c)]) for c in range(3)]


def test_tensorboard_holds_every_cycle_and_the_training_loss(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = tracked
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("frontier")] == [0, 1, 2]
    assert [e.value for e in acc.Scalars("frontier")] == _frontiers(run)
    loss = acc.Scalars("train/loss")
    assert loss[0].step <= 3 and loss[-1].step == 300 + 2 * 40  # base, then both cycles on one axis
    for tag in ("eval/acc/d1", "label/kept_fraction", "label/accuracy", "gate/promote", "gate/gain",
                "monitor/decontamination/alert", "monitor/label_audit/accuracy", "cost/cpu_s", "cost/train/wall_s"):
        assert tag in scalars, tag
    assert "gate/reason/text_summary" in acc.Tags()["tensors"]  # text


def test_mlflow_holds_one_run_with_the_config_and_every_cycle(tracked):
    from mlflow.tracking import MlflowClient

    _, run = tracked
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's file store, as rsi writes it
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "rsi-quick"]
    (found,) = client.search_runs([exp.experiment_id])  # the resume continued it
    assert found.data.params["train.steps"] == "40" and found.data.params["task"] == "sort"
    history = client.get_metric_history(found.info.run_id, "frontier")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(enumerate(_frontiers(run)))
    assert {"gate/reason/cycle-1", "gate/reason/cycle-2"} <= set(found.data.tags)
    assert found.info.status == "FINISHED"


def _wandb_records(path: Path):
    """The records of a W&B run file (a LevelDB log of protobuf `Record`s, 32 KiB blocks, a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        n, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind == 0:
            break
        buf = chunk if kind in (1, 2) else buf + chunk  # full, first | middle, last
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def test_the_offline_wandb_run_is_one_run_continued_on_resume(tracked):
    _, run = tracked
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and len({f.name for f in files}) == 1  # two sessions, one W&B run id
    history = [{(i.nested_key[0] if i.nested_key else i.key): json.loads(i.value_json) for i in r.history.item}
               for f in files for r in _wandb_records(f) if r.WhichOneof("record_type") == "history"]
    frontier = [(h["cycle"], h["frontier"]) for h in history if "frontier" in h]
    assert frontier == list(enumerate(_frontiers(run)))
    assert any("train/loss" in h and "train_step" in h for h in history)
    assert any(str(h.get("gate/reason", "")).startswith("cycle 2:") for h in history)


def test_trackio_holds_every_cycle(tracked):
    tmp, run = tracked
    code = ("import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
            "print(json.dumps(S.get_logs('rsi-quick', sys.argv[1]), default=str))")
    out = subprocess.run([sys.executable, "-c", code, run.name], capture_output=True, text=True, check=True,
                         env=_env(tmp))
    logs = json.loads(out.stdout)
    assert [(row["cycle"], row["frontier"]) for row in logs if "frontier" in row] == list(enumerate(_frontiers(run)))
    assert any("label/kept_fraction" in row for row in logs)


def test_a_tracker_that_fails_is_named_once_and_the_run_goes_on(tmp_path):
    class Flaky:
        name, ident, link = "flaky", "x", "x"

        def __init__(self):
            self.calls = 0

        def log(self, values, axis, step):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk quota exceeded")

        def params(self, flat): ...
        def text(self, key, value, axis, step): ...
        def close(self): ...

    class Steady(Flaky):
        def log(self, values, axis, step):
            self.calls += 1

    out = io.StringIO()
    flaky, steady = Flaky(), Steady()
    tracking = Tracking([flaky, steady], Console(file=out, width=200))
    for step in range(5):
        tracking.log({"loss": 1.0 / (step + 1), "skipped": None}, "train_step", step)
    tracking.close()
    assert flaky.calls == 3 and steady.calls == 5
    assert out.getvalue().count("tracker flaky failed (OSError: disk quota exceeded)") == 1


def test_a_run_whose_tracker_breaks_mid_run_completes(tmp_path, monkeypatch):
    from rsi.loop import start
    from rsi.track.to_tensorboard import TensorBoard

    calls = []

    def broken(self, values, axis, step):
        calls.append(step)
        if len(calls) > 3:
            raise RuntimeError("event file lost")

    monkeypatch.setattr(TensorBoard, "log", broken)
    out = io.StringIO()
    run = tmp_path / "run"
    start(resolve.load("quick", [*SMALL, "loop.cycles=0", "track=[tensorboard]"]), run, Console(file=out, width=300))
    assert out.getvalue().count("tracker tensorboard failed (RuntimeError: event file lost)") == 1
    assert len(calls) == 4 and status(run)["last_stage"] == [0, "evaluate"]  # the run went on to its end


def test_unknown_and_missing_trackers_are_refused_before_the_run(monkeypatch):
    with pytest.raises(ConfigError, match=r"config key 'track.0'.*'tensorboard', 'mlflow', 'wandb', 'trackio'"):
        resolve.load("quick", ["track=[neptune]"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"config key 'track': 'wandb' needs its package.*pip install 'rsi\[track\]'"):
        resolve.load("quick", ["track=[tensorboard, wandb]"])
