"""Procedurally generated tasks for a tiny character-level model, each with its verifier.

One file per family (`addition`, `multiplication`, `copy`, `reverse`, `sort`, `code_io`
(run in the sandbox), and `word_arithmetic` for pretrained models); importing this
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
from rsi.registry import PluginError, is_file_ref
from rsi.tasks.base import SPLIT_OFFSETS, SPLIT_SIZE, Task, control_set, heldout_set, problem, problems
from rsi.tasks.registry import TASKS

# Imported for their registration side effect.
from rsi.tasks import addition, code_io, copy, multiplication, reverse, sort, word_arithmetic  # noqa: F401  isort: skip

__all__ = [
    "SPLIT_OFFSETS",
    "SPLIT_SIZE",
    "TASKS",
    "Task",
    "control_set",
    "get_task",
    "heldout_set",
    "problem",
    "problems",
    "task_names",
    "tasks_table",
]


PARAMETRIC = {
    "jsonl": "jsonl:<path to a .jsonl file of question/answer rows>",
    "code_tests": "code_tests:<path to a .jsonl file of HumanEval-style function problems>",
    "reasoning_gym": "reasoning_gym:<dataset name>",
    "verifiers": "verifiers:<taskset id of an installed verifiers environment>",
}
_built: dict[str, Task] = {}  # parametric and plug-in tasks, by reference
_plugins: dict[str, Task] = {}  # plug-in tasks, by their own name


def get_task(name: str) -> Task:
    """The task `name` names: a registered one, a parametric one (`jsonl:<path>`, `code_tests:<path>`,
    `reasoning_gym:<dataset>`, `verifiers:<taskset id>`), an installed package's entry point in `rsi.tasks`, or
    `path/to/file.py:Name` (a `Task` subclass or instance; `rsi.registry`). A task from a package or
    a file is also found by its own `name` afterwards (its problems carry it).

    Raises `ConfigError` naming the known tasks, or what is wrong with the file or dataset.
    """
    if name in TASKS:
        return TASKS.get(name)
    if name in _plugins:
        return _plugins[name]
    if name not in _built:
        kind, sep, arg = name.partition(":")
        if sep and kind in PARAMETRIC and arg:
            from rsi.tasks.code_tests import CodeTests
            from rsi.tasks.gym import GymTask
            from rsi.tasks.jsonl import JsonlTask
            from rsi.tasks.verifiers_env import VerifiersTask

            _built[name] = {"jsonl": JsonlTask, "code_tests": CodeTests, "reasoning_gym": GymTask,
                            "verifiers": VerifiersTask}[kind](arg)
        else:
            _built[name] = _plugin(name)
    return _built[name]


def _plugin(ref: str) -> Task:
    try:
        found = TASKS.resolve(ref)
    except PluginError as e:  # a file's own problem says what to fix; an unknown name lists the other kinds
        raise ConfigError(str(e) if is_file_ref(ref) else f"{e}, or {' or '.join(PARAMETRIC.values())}") from None
    task = found() if isinstance(found, type) and issubclass(found, Task) else found
    if not isinstance(task, Task):
        raise ConfigError(f"task {ref!r} is a {type(found).__name__}, not an rsi task: define a subclass of "
                          "rsi.tasks.Task (see docs/architecture.md, 'Where to add a task')")
    if (task.name in TASKS or task.name in _plugins) and get_task(task.name) is not task:
        raise ConfigError(f"task {ref!r} is called {task.name!r}, which another task already is; give it another name")
    _plugins[task.name] = task  # its problems carry its name: `get_task(problem.task)` finds it
    return task


def task_names() -> list[str]:
    """Names of the built-in tasks and of those installed packages declare, sorted."""
    return TASKS.names()


def tasks_table() -> Table:
    """A table of every task: name, difficulty range, what difficulty means, what it asks with an example."""
    table = Table(title="tasks", caption="also: " + ", ".join(PARAMETRIC.values()))
    for column in ("name", "difficulties", "difficulty means", "what it asks, an example"):
        table.add_column(column)
    for name in task_names():
        task = get_task(name)
        ex = task.example()
        note = task.explain(ex)
        table.add_row(
            name,
            f"{task.min_difficulty}–{task.max_difficulty}",
            task.difficulty_meaning,
            f"{task.description}:\n{ex.prompt} → {ex.answer}" + (f"\n({note})" if note else ""),
        )
    return table
