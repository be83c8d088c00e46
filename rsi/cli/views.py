"""Commands that read a run or a model: status, report, export, eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rsi.cli.base import _commands, _warn, app, console, err, show


@app.command()
@_commands
def status(run_dir: Annotated[Path, typer.Argument(help="the run (or search) directory")],
           as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Where a run stands: champion, frontier, accuracy, cost (for a search directory: the
    population's frontier against compute, the best recipe and its lineage).

    Example: rsi status runs/quick-20261122-101500 --json
    """
    if _is_search(run_dir):
        from rsi.views.search import format_search_status, search_status

        show(search_status(run_dir), as_json, format_search_status)
        return
    from rsi.views.status import format_status
    from rsi.views.status import status as get_status

    show(get_status(run_dir), as_json, format_status)


def _is_search(path: Path) -> bool:
    from rsi.search.record import LEDGER

    return (path / LEDGER).is_file()


@app.command()
@_commands
def report(run_dir: Annotated[Path, typer.Argument(help="the run directory")],
           out: Annotated[Path | None, typer.Option("--out", help="where to write (default RUN/report.html)")] = None,
           ) -> None:
    """Write RUN/report.html (or --out) with plots.

    Example: rsi report runs/quick-20261122-101500 --out /tmp/report.html
    """
    if _is_search(run_dir):
        from rsi.views.search import write_search_report

        console.print(escape(f"wrote {write_search_report(run_dir, out)}"), highlight=False)
        return
    from rsi.views.report import write_report
    from rsi.views.status import corrupted, status

    st = status(run_dir)
    console.print(escape(f"wrote {write_report(run_dir, out, st)}"), highlight=False)
    _warn(corrupted(st))


@app.command()
@_commands
def export(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | parquet | hf (a datasets.Dataset directory)")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="where to write (default RUN/accepted.<format>)")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="write the champion as a plain HF model here")] = None,
) -> None:
    """Write the accepted (self-produced and verified) training data with its provenance, or with
    --model the champion as a plain Hugging Face model directory with a model card.

    Columns: prompt and completion (as TRL's trainers name them), cycle, difficulty, source (seed,
    model, human), the model that wrote the answer and its weights' sha256, labeler, verifier,
    label reason.

    Example: rsi export runs/quick-20261122-101500 --format parquet --out accepted.parquet
    Example: rsi export runs/quick-20261122-101500 --model out/sort-model
    """
    from rsi.engine.manifest import verify_all
    from rsi.run.rundir import MODELS
    from rsi.views.status import corrupted

    if model is not None:
        from rsi.views.card import export_model

        where = export_model(run_dir, model)
        console.print(escape(f"wrote the champion with its model card to {where}; upload it with "
                             f"`huggingface-cli upload USER/NAME {where}`"), highlight=False)
        return
    from rsi.views.export import export as export_run

    _warn(corrupted({"run_dir": str(run_dir), "checkpoints": verify_all(Path(run_dir) / MODELS)}))
    path, rows = export_run(run_dir, out, fmt)
    console.print(escape(f"wrote {rows} rows to {path}"), highlight=False)


@app.command("eval")
@_commands
def eval_(
    target: Annotated[str, typer.Argument(help="a run directory, an HF checkpoint directory or a .gguf file")],
    task: Annotated[str | None, typer.Option("--task", help="the task (default: the run's)")] = None,
    difficulties: Annotated[str | None, typer.Option(
        "--difficulties", help="A-B (default: the run's ladder, else the task's range)")] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="a run's checkpoint of this cycle")] = None,
    problems: Annotated[int | None, typer.Option(
        "--problems", min=1, help="held-out problems a difficulty (default: eval.problems_per_difficulty)")] = None,
    lm_eval: Annotated[str | None, typer.Option(
        "--lm-eval", help="lm-evaluation-harness tasks (comma-separated) instead of rsi's ladder")] = None,
    include: Annotated[list[Path] | None, typer.Option(
        "--include", help="a folder of lm-eval task YAML files (repeatable)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="lm-eval: at most this many documents a task")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Evaluate a model on the held-out ladder (greedy exact match, 95 % intervals, the frontier),
    or with --lm-eval on lm-evaluation-harness tasks through its Hugging Face model class.

    Example: rsi eval runs/quick-20261122-101500 --difficulties 1-12
    Example: rsi eval path/to/model.gguf --task word_arithmetic --json
    Example: rsi eval runs/quick-20261122-101500 --lm-eval my_task --include tasks/
    """
    if lm_eval is not None:
        from rsi.views.harness import format_results, harness

        show(harness(target, lm_eval, include or [], cycle=cycle, limit=limit), as_json, format_results)
        return
    from rsi.progress import bar
    from rsi.views.ladder import ladder, ladder_table, resolve_target

    t = resolve_target(target, task, cycle, difficulties, problems)
    with bar(err, f"evaluate {t.name}", len(t.difficulties)) as advance:  # progress on stderr
        found = ladder(t, on_difficulty=lambda r: advance(1, f"d{r.difficulty} {r.accuracy:.0%}"))
    show(found, as_json, ladder_table)
