"""lm-evaluation-harness on an rsi checkpoint, through the harness's own Hugging Face model class.
Backs `rsi eval TARGET --lm-eval TASKS [--include DIR] [--limit N]`.

TARGET is what `rsi eval` takes (`rsi.views.ladder.resolve_target`: a run's champion, a run's
cycle, a checkpoint directory; a GGUF file goes through its converted checkpoint). The harness
loads the directory with `AutoModelForCausalLM` / `AutoTokenizer`, exactly as any user of the
checkpoint would, so this is also the check that rsi's checkpoints work unchanged in the
ecosystem. Prompts are encoded as rsi encodes them: with `<bos>` first for a model without a chat
template (`add_bos_token`), through the chat template for one that has it. Tasks come from the
harness's registry or from `--include` folders of task YAML files with local data files (nothing
is downloaded here).

Example:
    >>> harness("runs/demo", "my_sort_task", [Path("tasks/")])     # doctest: +SKIP
    {'target': 'runs/demo/models/cycle-0004', 'tasks': {'my_sort_task': {'exact_match,none': 0.96, ...}}}
"""

from __future__ import annotations

from pathlib import Path

from rsi.errors import RsiError
from rsi.run.rundir import LEDGER, MODELS


class HarnessError(RsiError):
    """lm-eval is missing, or cannot run the tasks asked for (the message names the option)."""


def _checkpoint(target: str, cycle: int | None) -> Path:
    """The checkpoint directory TARGET names (a GGUF file: its conversion, made once per machine)."""
    from rsi.engine.backend import load_pretrained, resolve_path
    from rsi.engine.modelcache import converted
    from rsi.run.context import model_name
    from rsi.views.status import status

    where = resolve_path(target)
    if (where / LEDGER).is_file():
        path = where / MODELS / (model_name(cycle) if cycle is not None else status(where)["champion"])
    else:
        path = where
    if path.is_file():  # GGUF: the harness reads the converted checkpoint rsi keeps
        load_pretrained(str(path))
        path = converted(path)
    if not (path / "config.json").is_file():
        raise HarnessError(f"{path}: not a Hugging Face checkpoint directory (no config.json); give a run, a "
                           "checkpoint directory or a .gguf file.")
    return path


def harness(target: str, tasks: str, include: list[Path], cycle: int | None = None, limit: int | None = None,
            batch_size: int = 16) -> dict:
    """lm-eval's results on `tasks` (comma-separated) for the model TARGET names: per task, its metrics."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise HarnessError("--lm-eval needs lm-evaluation-harness, which is not installed. Install the extra: "
                           "pip install 'rsi[eval]'") from None
    from transformers import AutoTokenizer

    for folder in include:
        if not Path(folder).is_dir():
            raise HarnessError(f"--include {folder}: not a folder of lm-eval task YAML files")
    path = _checkpoint(target, cycle)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    folders = [str(Path(f).resolve()) for f in include] or None
    manager = TaskManager(include_path=folders, include_defaults=False) if folders else None
    if manager is None or any(n not in manager.all_tasks for n in names):  # indexing the harness's own takes ~15 s
        manager = TaskManager(include_path=folders)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        where = f" or in {', '.join(map(str, include))}" if include else " (add your own with --include DIR)"
        raise HarnessError(f"--lm-eval: no lm-eval task named {', '.join(map(repr, unknown))} in the harness's "
                           f"registry{where}. `lm-eval ls tasks` lists the harness's own.")
    chat = bool(getattr(AutoTokenizer.from_pretrained(path), "chat_template", None))
    bos = {} if chat else {"add_bos_token": True}  # as rsi: <bos> first (mends checkpoints saved before it said so)
    found = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(path), "dtype": "float32", **bos},
        tasks=names, task_manager=manager, limit=limit, batch_size=batch_size, device="cpu",
        apply_chat_template=chat, log_samples=False)
    if found is None:
        raise HarnessError("--lm-eval: the harness returned no results")
    metrics = {task: {k: v for k, v in m.items() if k != "alias"} for task, m in found["results"].items()}
    return {"target": str(path), "tasks": metrics, "limit": limit, "lm_eval_version": _version()}


def _version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def format_results(found: dict):
    """`harness`'s result as a rich table."""
    from rich.table import Table

    table = Table("task", "metric", "value", title=f"lm-eval on {found['target']}")
    for task, metrics in found["tasks"].items():
        for name, value in metrics.items():
            table.add_row(task, name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
