"""`rsi search`: a population-based search over how rsi trains (its recipe), on Ray Tune."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rsi.cli.base import STOPPED_EXIT, _commands, app, console, err
from rsi.errors import RsiError


@app.command()
@_commands
def search(
    config: Annotated[str, typer.Argument(help="built-in config name or YAML file")] = "default",
    space: Annotated[Path, typer.Option("--space", help="the search space: YAML of key: {choice|uniform|loguniform}")]
    = Path("space.yaml"),
    trials: Annotated[int, typer.Option("--trials", help="the population: trials run side by side")] = 4,
    cycles: Annotated[int | None, typer.Option("--cycles", help="cycles per trial (default: the config's)")] = None,
    search_dir: Annotated[Path | None, typer.Option("--dir", help="the search directory (default searches/<config>-"
                                                                  "<time>); an existing one is resumed")] = None,
    budget: Annotated[float | None, typer.Option(
        "--budget-cpu-hours", help="stop when the search has spent this; the same command with a larger one goes on")]
    = None,
    scheduler: Annotated[str, typer.Option("--scheduler", help="pbt | asha | random")] = "pbt",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key (repeatable)")] = None,
    cpus: Annotated[float, typer.Option("--cpus-per-trial", help="CPUs Ray gives each trial")] = 1.0,
) -> None:
    """Search the recipe (how a cycle trains, samples, labels, proposes) with a population of runs:
    each trial a normal run, one Tune iteration a cycle; PBT copies better trials' promoted
    champions into worse ones and perturbs their recipes.

    Example: rsi search quick --space space.yaml --trials 4 --budget-cpu-hours 1
    """
    from rsi import resolve
    from rsi.search.driver import SCHEDULERS, SearchPlan, SearchStopped, run_search
    from rsi.search.space import load_space

    if scheduler not in SCHEDULERS:
        raise RsiError(f"--scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    if trials < 1:
        raise RsiError(f"--trials {trials}: a search needs at least one trial")
    cfg = resolve.load(config, set_ or [])
    if cycles is not None and cycles < 1:
        raise RsiError(f"--cycles {cycles}: a trial runs at least one cycle")
    plan = SearchPlan(cfg, load_space(space, cfg), search_dir or Path("searches") / (
        f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"), trials, cycles or cfg.loop.cycles, scheduler, budget, cpus)
    try:
        done = run_search(plan, console)
    except SearchStopped as e:
        err.print(f"[bold yellow]stopped:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
        raise typer.Exit(STOPPED_EXIT) from None
    console.print(escape(f"search directory: {done} (rsi status {done}, rsi report {done})"), highlight=False)
