"""The loop: runs cycles of stages over a run directory, and is the only holder of state.

    runs/<name>/               what it holds: `rsi.run.rundir`

Progress is the ledger: a stage counts as done once its transaction committed, so `resume`
simply runs every stage that is not done yet. Before each stage the loop asks `rsi.run.stopping`
whether to stop (a spent budget, a STOP file, SIGINT or SIGTERM); if so, or if the gate stops for a human
review (`rsi.stages.review`), it records why and raises `RunStopped`. One process at a time runs a
run: `start` and `resume` hold its lock (`rsi.run.runlock`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import time
from collections import Counter
from contextlib import ExitStack, closing
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from rsi import progress, resolve
from rsi.config import Config, dump_config
from rsi.errors import PartFailed, RunDirError
from rsi.learn.resumable import clear_all
from rsi.ledger import Ledger
from rsi.monitors.noise import noisy_settings
from rsi.run import inputs
from rsi.run.context import Context, champion, champion_results, current_frontier, heldout_problems
from rsi.run.rundir import CHAMPION, CONFIG, LEDGER, LIVE, MODELS, STATE, atomic_write_text
from rsi.run.runlock import LOCK_FILE, hold
from rsi.run.stopping import RunStopped, Stopper, stale_stop
from rsi.scale import open_pool
from rsi.scale.pool import Pool
from rsi.stages import between_cycles, stages_of
from rsi.stages.evaluate import stage_evaluate
from rsi.stages.gate import stage_gate
from rsi.stages.generate import stage_generate
from rsi.stages.label import stage_label
from rsi.stages.propose import stage_propose
from rsi.stages.tracked import stage_done
from rsi.stages.train import stage_base, stage_train
from rsi.tasks import get_task
from rsi.track import Tracking, open_tracking

STAGES = {"base": stage_base, "propose": stage_propose, "generate": stage_generate, "label": stage_label,
          "train": stage_train, "evaluate": stage_evaluate, "gate": stage_gate}


def release_memory() -> None:
    """Give the memory a finished stage freed back to the OS (glibc otherwise keeps freed heap pages
    of the stage's many differently sized tensors and records). In `benchmarks/soak.py` a long
    `quick` run grew about 0.85 MB a cycle before this trim and 0.35 MB with it; the rest of that
    growth was oneDNN's kernel caches, capped in `rsi/__init__.py`. The objects the process holds
    before its first stage (its imports: torch, transformers) are frozen out of the collector
    (`gc.freeze` in `_go_on`): a full collection over them took 0.25 s a stage."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return None


_LIBC = _glibc()


def new_run_dir(cfg: Config, root: Path = Path("runs")) -> Path:
    return root / f"{cfg.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def start(cfg: Config, run_dir: Path | None = None, console: Console | None = None) -> Path:
    """Start a new run in `run_dir` (default `runs/<config>-<timestamp>`) and run it to the end."""
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg)
    console = console or Console()
    if (run_dir / LEDGER).exists():
        return resume(run_dir, console, expect=cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--run-dir {run_dir} is a file, not a directory; choose another --run-dir.")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise RunDirError(f"run directory {run_dir} is not empty and holds no rsi ledger; choose another --run-dir.")
    resolve.require(cfg)  # a config made in code has not had its references checked
    with closing(open_pool(cfg)) as pool:  # a cluster that is not there stops the run before it writes anything
        return _start(cfg, run_dir, console, pool)


def _start(cfg: Config, run_dir: Path, console: Console, pool: Pool) -> Path:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create run directory {run_dir}: {e.strerror}; choose another --run-dir.") from None
    with hold(run_dir):
        if (run_dir / LEDGER).exists():  # another process made it meanwhile
            return _continue(run_dir, console, [], expect=cfg, pool=pool)
        (run_dir / MODELS).mkdir(exist_ok=True)
        atomic_write_text(run_dir / CONFIG, dump_config(cfg))
        with Ledger(run_dir / LEDGER) as ledger:
            ledger.set_run(cfg.name, cfg.model_dump(mode="json"))
            inputs.record(ledger, cfg)
            ledger.add_event(0, "parts", resolve.origins(cfg))
        for warning in noisy_settings(cfg):
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        return _continue(run_dir, console, [], pool=pool)


def resume(run_dir: Path, console: Console | None = None, overrides: list[str] | None = None,
           expect: Config | None = None, allow_changed: bool = False, recipe: list[str] | None = None) -> Path:
    """Run every stage of `run_dir` that has not completed yet. `overrides` may raise the run's
    limits (budget.*, loop.cycles; recorded as a `resume` event and kept for later resumes); the
    rest of its config is frozen. Raises `RunStopped` if a budget, a STOP file or a signal ends it
    early, RunDirError at once if another process is running it (`rsi.run.runlock`), and
    `InputChanged` if a file it reads changed since it started, unless `allow_changed`. `recipe`:
    changes of how its next cycles train, sample, label and propose (`rsi.config.RECIPE`), recorded
    as a `recipe` event for the next cycle on; only between cycles."""
    run_dir = Path(run_dir)
    if not (run_dir / LEDGER).exists():
        raise RunDirError(f"{run_dir} is not an rsi run directory (no {LEDGER}); start one with `rsi run`.")
    with hold(run_dir):
        return _continue(run_dir, console or Console(), overrides or [], expect, allow_changed, recipe=recipe or [])


def _continue(run_dir: Path, console: Console, overrides: list[str], expect: Config | None = None,
              allow_changed: bool = False, pool: Pool | None = None, recipe: list[str] | None = None) -> Path:
    """`resume`'s work, with the run's lock held; `pool` (the stages' workers) is opened here when not given."""
    with Ledger(run_dir / LEDGER, create=False) as ledger:
        info = ledger.run_info()
        if expect is not None and info["config"] != expect.model_dump(mode="json"):
            raise RunDirError(f"run directory {run_dir} already holds run {info['name']!r} with a different config. "
                              f"Continue it with `rsi resume {run_dir}`, or choose another --run-dir.")
        source, raised = f"the config of run {run_dir}", ledger.resume_overrides() + overrides
        earlier = ledger.recipe_overrides()
        cfg = resolve.resumed(info["config"], raised, source, earlier + list(recipe or []))
        if recipe and cfg != resolve.resumed(info["config"], raised, source, earlier):
            _record_recipe(ledger, run_dir, list(recipe))
        with ExitStack() as stack:
            if pool is None:  # before anything is written: a cluster that is not there changes nothing
                pool = stack.enter_context(closing(open_pool(cfg)))
            _go_on(run_dir, console, overrides, allow_changed, ledger, cfg, pool)
    return run_dir


def _record_recipe(ledger: Ledger, run_dir: Path, recipe: list[str]) -> None:
    """A recipe change, recorded for the run's next cycle on; RunDirError unless the run stands between cycles."""
    done = ledger.completed_stages()
    if not between_cycles(done):
        raise RunDirError(f"{run_dir} stands after {done[-1][1]} of cycle {done[-1][0]}: a recipe changes between "
                          "cycles. Resume it without --recipe to finish the cycle (with --set loop.cycles="
                          f"{done[-1][0]}), then change the recipe.")
    ledger.add_event(done[-1][0] + 1 if done else 0, "recipe", {"overrides": recipe})


def _go_on(run_dir: Path, console: Console, overrides: list[str], allow_changed: bool, ledger: Ledger, cfg: Config,
           pool: Pool) -> None:
    """Run what is left of the run whose config `cfg` and ledger are open."""
    if changed := inputs.check(ledger, cfg, allow_changed):
        clear_all(run_dir / MODELS)  # a stage's saved mid-stage state was made from the old content
    for note in changed:
        console.print(f"[yellow]note:[/] going on with new content: {escape(note)}", highlight=False)
    costs = ledger.costs()
    if note := stale_stop(run_dir, costs[-1]["finished_at"] if costs else None):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if overrides:
        ledger.add_event(max((c for c, _ in ledger.completed_stages()), default=0), "resume",
                         {"overrides": overrides})
    ctx = Context(cfg, get_task(cfg.task), ledger, run_dir / MODELS, console, pool, _tracking(run_dir, ledger, cfg,
                                                                                            console))
    (run_dir / MODELS).mkdir(exist_ok=True)
    gc.collect()
    gc.freeze()  # what is alive now (the imports) outlives the stages: their collections need not walk it
    try:
        with Stopper(run_dir) as stopper, progress.live(run_dir / LIVE):
            _run_cycles(ctx, run_dir, stopper)
    finally:
        gc.unfreeze()  # a process that goes on (a test, a search's trial actor) collects them again
        ctx.track.close()
    if stopper.stop_file.exists():  # it came during the last stage: nothing was left to stop before
        stopper.stop_file.unlink(missing_ok=True)
        console.print(f"[yellow]note:[/] removed {escape(str(stopper.stop_file))}: it came during the run's last "
                      "stage, so the run had no stage left to stop before", highlight=False)


def _tracking(run_dir: Path, ledger: Ledger, cfg: Config, console: Console) -> Tracking:
    """The run's experiment trackers (`rsi.track`), continuing the tracked runs the ledger names."""
    if not cfg.track:
        return Tracking.off()
    known = {name: made["ident"] for e in ledger.events("tracking") for name, made in e["detail"].items()}
    tracking, made = open_tracking(cfg.track, run_dir, run_dir.name, known, console, cfg.model_dump(mode="json"))
    if made:
        ledger.add_event(max((c for c, _ in ledger.completed_stages()), default=0), "tracking", made)
    return tracking


def _run_cycles(ctx: Context, run_dir: Path, stopper: Stopper) -> None:
    done = set(ctx.ledger.completed_stages())
    why = f"it ran every cycle it was given (loop.cycles={ctx.cfg.loop.cycles})"
    for cycle in range(0, ctx.cfg.loop.cycles + 1):
        if cycle > 0 and (cycle, "propose") not in done:
            f = current_frontier(ctx, champion(ctx.ledger))
            if f >= ctx.cfg.loop.max_difficulty:
                ctx.console.print(f"frontier {f} reached loop.max_difficulty; stopping.")
                why = f"its frontier {f} reached loop.max_difficulty={ctx.cfg.loop.max_difficulty}"
                break
        t0 = time.perf_counter()
        ran = False
        for stage in stages_of(cycle):
            if (cycle, stage) in done:
                continue
            why = stopper.reason(ctx.cfg.budget, ctx.ledger.totals())
            try:
                if why:
                    raise RunStopped(run_dir, cycle, stage, why)
                progress.at(cycle, stage)
                STAGES[stage](ctx, cycle)  # may stop itself: a promotion awaiting review
            except RunStopped as stop:
                ctx.ledger.add_event(cycle, "stop", {"before": stage, "reason": stop.reason,
                                                     "stages_done": len(ctx.ledger.completed_stages()), **stop.detail})
                raise
            except PartFailed as e:
                raise e.in_stage(run_dir, cycle, stage) from e.__cause__
            ran = True
            stage_done(ctx.track, ctx, cycle, stage)  # after the commit: trackers see what the ledger holds
            release_memory()
            atomic_write_text(run_dir / STATE, json.dumps({"cycle": cycle, "stage": stage}))
            atomic_write_text(run_dir / CHAMPION, champion(ctx.ledger) + "\n")
        if ran:
            ctx.console.print(summary_line(ctx, cycle, time.perf_counter() - t0))
            if cycle == 0 and (notes := cycle0_notes(ctx)):
                ctx.ledger.add_event(0, "warning", {"notes": notes})
                for note in notes:
                    ctx.console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    atomic_write_text(run_dir / CHAMPION, champion(ctx.ledger) + "\n")
    _record_end(ctx.ledger, why)


def _record_end(ledger: Ledger, why: str) -> None:
    """The `end` event that tells a finished run from one whose process died (`rsi.views.state`);
    once per end: a resume of a finished run adds none."""
    stages = ledger.completed_stages()
    ends = ledger.events("end")
    if not ends or ends[-1]["detail"]["stages_done"] != len(stages):
        ledger.add_event(stages[-1][0] if stages else 0, "end", {"stages_done": len(stages), "why": why})


def cycle0_notes(ctx: Context) -> list[str]:
    """What the base model's results say about the run's setup, though nothing is wrong enough to
    stop it: a labelled difficulty the base did not learn in `base.steps`, and ladder difficulties
    with too few distinct held-out problems for the gate (`gate.min_problems`)."""
    cfg, notes = ctx.cfg, []
    acc = {d: r.accuracy for d, r in champion_results(ctx.ledger, champion(ctx.ledger)).items()}
    labelled = range(cfg.seed_data.min_difficulty, cfg.seed_data.max_difficulty + 1) if cfg.base.steps else range(0)
    weak = [d for d in labelled if acc.get(d, 0.0) < cfg.curriculum.threshold]
    if weak:
        notes.append(f"the base model did not learn all of its labelled range {labelled.start}-{labelled.stop - 1} in "
                     f"base.steps={cfg.base.steps}: " + ", ".join(f"{acc.get(d, 0.0):.0%} at {d}" for d in weak)
                     + f" (curriculum.threshold {cfg.curriculum.threshold:.0%}), so the frontier starts inside the "
                     "labels; more base.steps or a larger model would give the loop more to start from.")
    counts = Counter(p.difficulty for p in heldout_problems(cfg, ctx.task))
    few = [d for d, n in sorted(counts.items()) if n < cfg.gate.min_problems and d not in labelled]
    if few:
        notes.append("too few distinct held-out problems for the gate at " + ", ".join(f"difficulty {d} ({counts[d]})"
                     for d in few) + f": gate.min_problems is {cfg.gate.min_problems} (of "
                     f"eval.problems_per_difficulty={cfg.eval.problems_per_difficulty} items, repeats count once). "
                     "Raise eval.problems_per_difficulty; where a small problem space or task file has no more, "
                     "gains there cannot be confirmed.")
    return notes


def summary_line(ctx: Context, cycle: int, seconds: float) -> str:
    """cycle, frontier, held-out accuracy at frontier and frontier+1, valid proposals (self-play),
    kept/generated, decision, seconds."""
    champ = champion(ctx.ledger)
    f = current_frontier(ctx, champ)
    acc = {d: r.accuracy for d, r in champion_results(ctx.ledger, champ).items()}
    fmt = lambda d: f"{acc[d]:.0%}" if d in acc else "-"  # noqa: E731
    labels = ctx.ledger.labels(cycle) if cycle else []
    kept = sum(lab.kept for lab in labels)
    gates = [g for g in ctx.ledger.gates() if g["cycle"] == cycle]
    decision = ("promote" if gates[0]["promote"] else f"roll back ({gates[0]['reason']})") if gates else "base"
    proposals = ctx.ledger.proposals(cycle) if cycle else []
    proposed = f"proposals {sum(q.valid for q in proposals)}/{len(proposals)} valid | " if proposals else ""
    return (f"[bold]cycle {cycle}[/] frontier {f} | acc@{f} {fmt(f)} acc@{f + 1} {fmt(f + 1)} | "
            f"{proposed}kept {kept}/{len(labels)} | {decision} | {seconds:.0f}s")
