"""The held-out ladder of any model: a run's champion, a run's cycle, an HF checkpoint directory or a
GGUF file. Backs `rsi eval TARGET`.

`resolve_target(target, task, cycle)` says what TARGET names and how it will be evaluated: a run
directory (its ledger) gives its champion, or with `cycle` that cycle's checkpoint, its task and
its evaluation settings (`eval.*`, the curriculum's threshold, the engine); any other model needs
`task` and is evaluated with the config's defaults over the task's whole range. `ladder(...)`
samples greedily and scores the distinct held-out problems of each difficulty exactly as the
evaluate stage does (`rsi.stages.evaluate.evaluate_ladder`: same problems, same 95 % Wilson
intervals), so a run's own figures and `rsi eval`'s agree. Nothing is written anywhere.

Example:
    >>> t = resolve_target("runs/demo", None, None)                # doctest: +SKIP
    >>> ladder(t)["frontier"]                                       # doctest: +SKIP
    12
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rsi.config import CurriculumConfig, EngineConfig, EvalConfig, GenerateConfig
from rsi.errors import RsiError
from rsi.run.curriculum import frontier
from rsi.run.rundir import LEDGER, MODELS, open_ledger


class EvalTargetError(RsiError):
    """`rsi eval`'s TARGET, --task or --difficulties cannot be used as given."""


@dataclass(frozen=True)
class Target:
    path: Path  # the checkpoint directory or GGUF file to load
    name: str  # how results name it
    task: str
    difficulties: list[int]
    eval: EvalConfig
    threshold: float
    batch_size: int
    engine: EngineConfig


def parse_difficulties(text: str) -> tuple[int, int]:
    """'A-B' (or 'A') as (A, B)."""
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise EvalTargetError(f"--difficulties {text!r}: give a range A-B of whole numbers, e.g. 1-12") from None
    if a > b or a < 0:
        raise EvalTargetError(f"--difficulties {text!r}: A-B needs 0 <= A <= B")
    return a, b


def _task(ref: str):
    from rsi.tasks import get_task

    return get_task(ref)


def resolve_target(target: str | Path, task: str | None = None, cycle: int | None = None,
                   difficulties: str | None = None, problems: int | None = None) -> Target:
    """What `target` names, with the task and settings it is evaluated with (see the module)."""
    from rsi.engine.backend import resolve_path

    where = resolve_path(str(target))  # a path, or pkg:<package>/<file> inside an installed package
    if (where / LEDGER).is_file():
        from rsi.run.context import model_name
        from rsi.views.status import status

        with open_ledger(where) as ledger:
            config = (ledger.run_info() or {}).get("config", {})
        name = model_name(cycle) if cycle is not None else status(where)["champion"]
        path = where / MODELS / name
        if not path.is_dir():
            raise EvalTargetError(f"{where} has no checkpoint {name} (models/{name}); "
                                  f"`rsi status {where}` lists its cycles.")
        e = EvalConfig(**config.get("eval", {}))
        ladder = (e.min_difficulty, e.max_difficulty)
        threshold = config.get("curriculum", {}).get("threshold", CurriculumConfig().threshold)
        batch = config.get("generate", {}).get("batch_size", GenerateConfig().batch_size)
        engine = EngineConfig(**config.get("engine", {}))
        task = task or config.get("task")
    else:
        if cycle is not None:
            raise EvalTargetError(f"--cycle {cycle}: {where} is not a run directory (no {LEDGER}); --cycle picks "
                                  "a checkpoint of a run.")
        if not where.exists():
            raise EvalTargetError(f"{where} does not exist: give a run directory, an HF checkpoint directory "
                                  "or a .gguf file.")
        if where.is_dir() and not (where / "config.json").is_file():
            raise EvalTargetError(f"{where} is neither a run directory (no {LEDGER}) nor a Hugging Face checkpoint "
                                  "(no config.json).")
        if task is None:
            raise EvalTargetError(f"{where} is a model, not a run: say which task to evaluate it on with --task "
                                  "(`rsi tasks` lists them).")
        path, name, e = where, where.name, EvalConfig()
        ladder, threshold = None, CurriculumConfig().threshold
        batch, engine = GenerateConfig().batch_size, EngineConfig()
    found = _task(task)
    lo, hi = parse_difficulties(difficulties) if difficulties else ladder or (found.min_difficulty,
                                                                               found.max_difficulty)
    if lo < found.min_difficulty or hi > found.max_difficulty:
        raise EvalTargetError(f"--difficulties {lo}-{hi}: task {task!r} has difficulties "
                              f"{found.min_difficulty}-{found.max_difficulty}")
    if problems is not None:
        e = e.model_copy(update={"problems_per_difficulty": problems})
    return Target(path, name, task, list(range(lo, hi + 1)), e, threshold, batch, engine)


def _load(t: Target):
    """(model, tokenizer) of the target: an rsi checkpoint verified against its manifest first."""
    from rsi.engine import device
    from rsi.engine.backend import load_pretrained
    from rsi.engine.manifest import MANIFEST, verify_checkpoint

    if t.path.is_dir() and (t.path / MANIFEST).is_file():
        verify_checkpoint(t.path)
    model, tokenizer = load_pretrained(str(t.path))  # a GGUF file converted once per machine (`modelcache`)
    device.place(model, device.choose(t.engine))
    return model, tokenizer


def ladder(t: Target, on_difficulty: Callable | None = None) -> dict:
    """The target's held-out ladder: per difficulty n, correct, accuracy and its 95 % interval;
    the frontier (every difficulty up to it at >= the threshold) and the mean accuracy."""
    from rsi.engine.samplers import TorchSampler
    from rsi.scale.pool import LocalSession
    from rsi.stages.evaluate import evaluate_ladder
    from rsi.tasks.guard import GuardedTask

    task = GuardedTask(_task(t.task))
    model, tokenizer = _load(t)
    session = LocalSession(TorchSampler(model, tokenizer))
    results = evaluate_ladder(session, task, t.difficulties, t.eval.problems_per_difficulty, t.name,
                              t.eval.stop_after_zeros, t.batch_size, on_difficulty=on_difficulty)
    acc = {r.difficulty: r.accuracy for r in results}
    rows = [{"difficulty": r.difficulty, "n": r.n, "correct": r.correct, "accuracy": r.accuracy, "lo": r.lo,
             "hi": r.hi} for r in results]
    return {"target": str(t.path), "model": t.name, "task": t.task, "difficulties": [t.difficulties[0],
            t.difficulties[-1]], "threshold": t.threshold, "ladder": rows,
            "frontier": frontier(acc, t.threshold, t.difficulties[0]),
            "mean_accuracy": sum(acc.get(d, 0.0) for d in t.difficulties) / len(t.difficulties),
            "verifier_errors": task.errors}


def ladder_table(found: dict):
    """`ladder`'s result as a rich table with a title line."""
    from rich.table import Table

    table = Table("difficulty", "accuracy", "95 % interval", "problems",
                  title=f"{found['model']} on {found['task']}: frontier {found['frontier']} "
                        f"(>= {found['threshold']:.0%}), mean accuracy {found['mean_accuracy']:.3f}")
    for r in found["ladder"]:
        table.add_row(str(r["difficulty"]), f"{r['accuracy']:.3f}", f"{r['lo']:.3f}-{r['hi']:.3f}", str(r["n"]))
    return table
