"""Procedurally generated tasks for a tiny character-level model, each with its verifier.

One file per family (`addition`, `multiplication`, `copy`, `reverse`, `sort`); importing this
package registers them all in `TASKS`.

Example:
    >>> from rsi.tasks import get_task, problem
    >>> p = problem(get_task("reverse"), difficulty=4, split="heldout", index=7)
    >>> get_task("reverse").verify(p, p.answer).reward
    1.0
"""

from __future__ import annotations

from rich.table import Table

from rsi.errors import ConfigError
from rsi.tasks.base import SPLIT_OFFSETS, SPLIT_SIZE, Task, problem, problems
from rsi.tasks.registry import TASKS

# Imported for their registration side effect.
from rsi.tasks import addition, copy, multiplication, reverse, sort  # noqa: F401  isort: skip

__all__ = [
    "SPLIT_OFFSETS",
    "SPLIT_SIZE",
    "TASKS",
    "Task",
    "get_task",
    "problem",
    "problems",
    "task_names",
    "tasks_table",
]


def get_task(name: str) -> Task:
    """The registered task called `name`; a `ConfigError` listing known tasks otherwise."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    return TASKS.get(name)


def task_names() -> list[str]:
    """Names of all registered tasks, sorted."""
    return TASKS.names()


def tasks_table() -> Table:
    """A table of every task: name, difficulty range, what difficulty means, an example."""
    table = Table(title="tasks")
    for column in ("name", "difficulties", "difficulty means", "example"):
        table.add_column(column)
    for name in task_names():
        task = TASKS.get(name)
        ex = task.example()
        table.add_row(
            name,
            f"{task.min_difficulty}–{task.max_difficulty}",
            task.difficulty_meaning,
            f"{ex.prompt} → {ex.answer}",
        )
    return table
