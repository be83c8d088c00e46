"""`rsi repair RUN`: retrain every checkpoint that no longer matches its manifest.

A checkpoint is what its stage's training call made from the ledger, the checkpoint it started
from and its seed (`rsi.stages.train`), so the same call makes it again. Checkpoints are repaired
in cycle order (a later one may start from an earlier one), each into `<name>.repair` first; it
replaces the corrupted one only when its weights digest equals the one the stage recorded in its
metrics (or, for runs older than that record, the digest in the checkpoint's own manifest, if that
is readable). A mismatch (another machine, thread count or library version trains differently)
keeps the corrupted checkpoint and says so. Each repair is a `repair` event in the ledger; the run's
lock is held throughout (`rsi.run.runlock`), so no run or resume works on it meanwhile.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from rich.console import Console

from rsi import resolve
from rsi.engine.manifest import MANIFEST, verify_all, weights_sha256
from rsi.errors import CheckpointError, RunDirError
from rsi.learn.resumable import clear
from rsi.ledger import Ledger
from rsi.run import inputs
from rsi.run.context import Context, champion_cycle
from rsi.run.rundir import MODELS, ledger_path
from rsi.run.runlock import hold
from rsi.stages.train import base_member, plan, train_member
from rsi.tasks import get_task

_NAME = re.compile(r"^(?:cycle|friend(\d+))-(\d{4})$")


def repair(run_dir: Path, console: Console | None = None) -> list[str]:
    """Retrain the run's corrupted checkpoints; return what was repaired, one line each. Raises
    CheckpointError when a retrained checkpoint differs from the recorded digest."""
    run_dir, console = Path(run_dir), console or Console()
    if not ledger_path(run_dir).exists():
        raise RunDirError(f"{run_dir} is not an rsi run directory (no ledger).")
    with hold(run_dir, "rsi repair"), Ledger(ledger_path(run_dir), create=False) as ledger:
        bad = sorted((name for name, why in verify_all(run_dir / MODELS).items() if why), key=_order)
        if not bad:
            return []
        info, source = ledger.run_info()["config"], f"the config of run {run_dir}"
        cfg = resolve.resumed(info, ledger.resume_overrides(), source)
        inputs.check(ledger, cfg)  # a changed task or reward file would train other weights
        done = []
        for name in bad:  # each with the recipe its cycle ran with (`recipe` events)
            at = resolve.resumed(info, ledger.resume_overrides(), source, ledger.recipe_overrides(_order(name)[0]))
            done.append(_repair_one(Context(at, get_task(at.task), ledger, run_dir / MODELS, console), name))
        return done


def _order(name: str) -> tuple[int, int]:
    m = _NAME.match(name)
    return (int(m[2]), int(m[1] or 0)) if m else (1 << 30, 0)


def _repair_one(ctx: Context, name: str) -> str:
    m = _NAME.match(name)
    stage = "base" if m and int(m[2]) == 0 else "train"
    if m is None or not ctx.ledger.is_done(int(m[2]), stage):
        raise CheckpointError(f"checkpoint {ctx.checkpoint(name)} is corrupted, and no completed stage of this run "
                              f"wrote it ({'not a checkpoint name' if m is None else stage + ' not done'}); remove it "
                              "(`rsi resume` writes it again if a stage needs it).")
    cycle, k = int(m[2]), int(m[1] or 0)
    expected = _recorded(ctx, cycle, stage, name)
    tmp = f"{name}.repair"
    if cycle == 0:
        made = base_member(ctx, k, tmp)
    else:
        made = train_member(ctx, cycle, k, plan(ctx, cycle), champion_cycle(ctx.ledger, before=cycle), tmp)
    path, new = ctx.checkpoint(name), ctx.checkpoint(tmp)
    clear(new)
    if expected is not None and made.weights_sha256 != expected:
        shutil.rmtree(new, ignore_errors=True)
        raise CheckpointError(
            f"retrained {name} differs from the weights the run recorded (sha256 {made.weights_sha256[:12]}… ≠ "
            f"{expected[:12]}…): this machine, its thread count or a library version trains differently. {path} is "
            "left as it was; restore it from a copy, or continue from the last intact champion in a new run.")
    shutil.rmtree(path, ignore_errors=True)
    new.rename(path)
    confirmed = "equal to the recorded digest" if expected else "no digest was recorded, so it is unconfirmed"
    ctx.ledger.add_event(cycle, "repair", {"checkpoint": name, "weights_sha256": made.weights_sha256,
                                           "confirmed": expected is not None})
    return f"retrained {name} (cycle {cycle} {stage}): weights sha256 {made.weights_sha256}, {confirmed}"


def _recorded(ctx: Context, cycle: int, stage: str, name: str) -> str | None:
    """The weights digest the stage recorded for `name`, else its manifest's, if readable."""
    for m in ctx.ledger.metrics():
        if m["cycle"] == cycle and m["stage"] == stage and name in m["metrics"].get("checkpoints", {}):
            return m["metrics"]["checkpoints"][name]
    try:
        manifest = json.loads((ctx.checkpoint(name) / MANIFEST).read_text())
        return manifest.get("weights_sha256") or weights_sha256(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
