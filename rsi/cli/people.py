"""Commands for the people in the loop: review, add, withdraw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from rsi.cli.base import _commands, app, console, show
from rsi.errors import RsiError


@app.command()
@_commands
def review(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    approve: Annotated[bool, typer.Option("--approve", help="approve the waiting candidate's promotion")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="reject it: the run keeps its champion")] = False,
    why: Annotated[str, typer.Option("--why", help="the reason, recorded with the ruling")] = "",
    by: Annotated[str | None, typer.Option("--by", help="who decides (default: the login name)")] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="a vetoed cycle other than the latest")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the candidate a run awaits approval for (gate.require_approval), or a promotion a
    monitor vetoed, and record a ruling.

    Without --approve/--reject it shows the candidate's accuracy against the champion's, the
    cycle's monitor readings and a sample of the new training data. For a waiting candidate
    `rsi resume RUN` then acts; approving a vetoed one overrules the monitor and makes it the
    champion at once.

    Example: rsi review runs/quick-20261122-101500 --approve --by alice --why "gains hold at d4-d5"
    """
    from rsi.stages.review import ReviewError, record, summary

    if approve and reject:
        raise ReviewError("pass one of --approve and --reject, not both")
    if approve or reject:
        done = record(run_dir, approve, why, by, cycle)
        if done["overrule"]:
            what = "overruled the veto: it is the champion now" if approve else "the rollback stands"
        else:
            what = f"continue with `rsi resume {run_dir}`"
        console.print(escape(f"recorded: {done['ruling']} {done['candidate']} (cycle {done['cycle']}) by "
                             f"{done['by']} ({done['why']}); {what}"), highlight=False)
        return
    from rsi.views.status import format_review

    show(summary(run_dir, cycle), as_json, format_review)


@app.command()
@_commands
def add(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    file: Annotated[Path, typer.Argument(help='JSONL file: {"prompt": ..., "answer": ..., "difficulty": ...} a line')],
) -> None:
    """Add people's problems (with answers) to a run; they join its next cycle, marked `human`.

    Every row is checked first as the task would (the prompt's format and difficulty, the
    answer, the model's alphabet, no overlap with a held-out prompt); a bad one names its line and
    nothing is added. Rows the run already has are skipped. `rsi withdraw` takes them back.

    Example: rsi add runs/quick-20261122-101500 my_problems.jsonl
    """
    from rsi.run.human import add_problems

    cycle, made, known = add_problems(run_dir, file)
    skipped = f" ({known} rows the run already had were skipped)" if known else ""
    console.print(escape(f"added {len(made)} human problems to cycle {cycle} of {run_dir}{skipped}; they are "
                         f"answered when that cycle runs (`rsi resume {run_dir}`, with --set loop.cycles=N if the "
                         "run has finished)"), highlight=False)


@app.command()
@_commands
def withdraw(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    file: Annotated[Path | None, typer.Option("--file", help="withdraw only this file's rows")] = None,
    all_: Annotated[bool, typer.Option("--all", help="withdraw every human problem not used yet")] = False,
) -> None:
    """Take back problems added with `rsi add` that no stage has used yet (by mistake, say).

    Example: rsi withdraw runs/quick-20261122-101500 --file my_problems.jsonl
    """
    from rsi.run.human import withdraw_problems

    if (file is None) == (not all_):
        raise RsiError("pass --file FILE (that file's rows) or --all (every human problem not used yet), one of them")
    n, cycle = withdraw_problems(run_dir, file)
    console.print(escape(f"withdrew {n} human problems from cycle {cycle} of {run_dir}"), highlight=False)


@app.command("label")
@_commands
def label_(
    run_dir: Annotated[Path, typer.Argument(help="the run directory")],
    problem: Annotated[str | None, typer.Argument(help="the problem id to label (without it: list the queue)")] = None,
    answer: Annotated[str | None, typer.Option("--answer", help="the problem's right answer")] = None,
    wrong: Annotated[str | None, typer.Option("--wrong", help="a kept label's answer that is wrong")] = None,
    why: Annotated[str, typer.Option("--why", help="the reason, recorded with the label")] = "",
    by: Annotated[str | None, typer.Option("--by", help="who labels (default: the login name)")] = None,
    cycle: Annotated[int | None, typer.Option("--cycle", help="the queue of this cycle (default: the latest)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Label what the vote could not: list the queue of problems whose samples split (label.labeler
    vote), give one its right answer, or mark a kept label wrong. Labels train from the next cycle.

    Example: rsi label runs/vote-20261204-101500 sort/train/5/17 --answer 1234 --why "sorted by hand"
    """
    from rsi.run.human_labels import label, read_queue

    if problem is None:
        shown, rows = read_queue(run_dir, cycle)
        show({"cycle": shown, "queue": rows}, as_json, lambda q: Text("\n".join(
            [f"cycle {q['cycle']}: {len(q['queue'])} problems the vote left unlabelled"]
            + [f"  {r['problem_id']}  {r['prompt']!r}  votes: "
               + ", ".join(f"{v['answer']!r}×{v['n']}" for v in r["votes"]) for r in q["queue"]])))
        return
    if (answer is None) == (wrong is None):
        raise RsiError("pass --answer ANSWER (the right answer) or --wrong ANSWER (a kept label that is wrong), one")
    done = label(run_dir, problem, answer if answer is not None else wrong, answer is not None, why, by)
    what = "the right answer" if done["correct"] else "a wrong kept label"
    console.print(escape(f"recorded {done['answer']!r} as {what} for {problem} by {done['by']}; it trains from cycle "
                         f"{done['cycle']} (`rsi resume {run_dir}`, with --set loop.cycles=N if the run has "
                         "finished)"), highlight=False)
