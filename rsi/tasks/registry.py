"""The task registry, kept apart from `rsi.tasks.__init__` so family modules can import it
without an import cycle. Each family module ends with one `TASKS.register(...)` line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsi.registry import Registry

if TYPE_CHECKING:
    from rsi.tasks.base import Task

TASKS: Registry[Task] = Registry("task")
