"""The registered model tasks: everything that trains, judges, registers or serves loops over these.

A new task is one module with a :class:`~customer_value.tasks.base.Task` subclass plus one line in
``_BUILTIN`` (or :func:`register` from outside the package, e.g. a plug-in or a test).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from customer_value.tasks.base import Task
from customer_value.tasks.churn import ChurnTask
from customer_value.tasks.clv import CLVTask
from customer_value.tasks.personas import PersonaTask

__all__ = ["Task", "registered", "get", "register", "unregister", "registered_extra", "labelled"]

# Fit order: the supervised tasks first, then the personas (their profile reads the others' output).
_BUILTIN: tuple[Task, ...] = (ChurnTask(), CLVTask(), PersonaTask())
_extra: list[Task] = []


def registered() -> tuple[Task, ...]:
    """Every task, in fit order (built-in first, then those added with :func:`register`)."""
    return (*_BUILTIN, *_extra)


def labelled(config) -> tuple[Task, ...]:
    """The tasks that learn from labels (they get snapshots), in fit order."""
    return tuple(t for t in registered() if t.window_days(config) is not None)


def get(name: str) -> Task:
    """The registered task called ``name``."""
    for task in registered():
        if task.name == name:
            return task
    raise KeyError(f"no task named {name!r}; registered: {[t.name for t in registered()]}")


def register(task: Task) -> None:
    """Add a task after the built-in ones; its name and prediction columns must be new."""
    taken = {t.name for t in registered()}
    columns = {c.name for t in registered() for c in t.outputs}
    if task.name in taken:
        raise ValueError(f"a task named {task.name!r} is already registered")
    clash = columns & {c.name for c in task.outputs}
    if clash:
        raise ValueError(f"prediction columns {sorted(clash)} are already produced by another task")
    _extra.append(task)


def unregister(name: str) -> None:
    """Remove a task added with :func:`register` (built-in tasks stay)."""
    _extra[:] = [t for t in _extra if t.name != name]


@contextlib.contextmanager
def registered_extra(task: Task) -> Iterator[Task]:
    """Register ``task`` for the duration of a ``with`` block (tests, notebooks)."""
    register(task)
    try:
        yield task
    finally:
        unregister(task.name)
