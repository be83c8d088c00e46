"""The `rsi` command line (typer + rich). Commands only wire library functions together.

    rsi run [CONFIG] [--run-dir DIR] [--set a.b=c ...]   start a loop (default config: "default")
    rsi resume RUN [--set budget.k=v ...]                continue a stopped run (limits may be raised)
    rsi repair RUN                                       retrain checkpoints that fail their manifests
    rsi status RUN [--json]                              where a run stands
    rsi report RUN [--out FILE]                          write RUN/report.html
    rsi export RUN [--format jsonl|parquet|hf] [--out P] the accepted training data, with provenance
    rsi export RUN --model DIR                           the champion as a plain HF model with a card
    rsi review RUN [--approve|--reject --why ...]        a person's ruling on a promotion
    rsi add RUN FILE / rsi withdraw RUN --file FILE      people's problems for the next cycle
    rsi label RUN [PROBLEM --answer A | --wrong A]       the vote's unlabelled problems; a person's label
    rsi serve [RUNS_DIR] [--host H] [--port P]           the web console: watch, review, label, add, stop
    rsi stop RUN                                         stop a run before its next stage (RUN/STOP)
    rsi search [CONFIG] --space S --trials N             search the recipe with a population of runs (Ray Tune)
    rsi tasks                                            the registered tasks
    rsi sandbox run FILE [--stdin F] [--timeout S] [--json]   run a program as model-written code runs
    rsi doctor                                           what this machine can isolate, its devices

One module per group of commands (`runs`, `views`, `people`, `serve`, `search`, `machine`), each registering on the
one app of `rsi.cli.base`, which also says how every command reports an error.
"""

from importlib import import_module

from rsi.cli.base import _commands, app, os_error

# each registers its commands, in --help's order
for _group in ("runs", "views", "people", "serve", "search", "machine"):
    import_module(f"rsi.cli.{_group}")

__all__ = ["_commands", "app", "main", "os_error"]


def main() -> None:
    app()
