"""The short flags of the tasks, chosen once for all of them, never generated.

Invoke would give every flag a short form from its first free letter, so `-s` meant
--stage in one task and --skip-tests or --services in another. Here a short flag
exists only when it is listed below, and then it means the same flag in every task.
Invoke's own flags (-f, -e, -h, ...) go before the task name; after it, a task's
flags win, and `-h` stays help because no task takes it.
"""
from __future__ import annotations

from typing import Any

import invoke

# the flag (its parameter name) -> its short form, in every task that has the flag
SHORT_FLAGS = {
    "stage": "s",
    "yes": "y",
    "follow": "f",
    "dry_run": "n",
}


class Task(invoke.Task):
    """An Invoke task whose only short flags are those of ``SHORT_FLAGS``."""

    def __init__(self, body: Any, **options: Any) -> None:
        super().__init__(body, **{**options, "auto_shortflags": False})

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and not opts["positional"]:
            if short in taken_names:
                raise ValueError(f"task {self.name}: -{short} would be both --{name} and another flag")
            opts["names"] = [*opts["names"], short]
        return opts
