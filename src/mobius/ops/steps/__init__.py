"""The capabilities' steps, each module registering its own in mobius.ops.step.REGISTRY when imported.

A step is looked up by name (`find_step`), which imports only its capability's module: a one-step plan
(`mobius env promote`, `deploy`, `rollback`) loads one of seven, and a record written by any release finds
its steps the same way when it is resumed or rolled back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mobius.ops.step import REGISTRY, Step

# the module under mobius.ops.steps that registers a step, by the part of the step's name before its first dot
MODULES = {"backup": "backup", "config": "config", "db": "db", "env": "envs", "golden": "golden",
           "library": "library", "media": "media"}


def find_step(name: str) -> Callable[[dict[str, Any]], Step] | None:
    """The factory of step `name` (its capability's module imported on first use); None for an unknown step."""
    if name not in REGISTRY:
        module = MODULES.get(name.split(".", 1)[0])
        if module is not None:
            importlib.import_module(f"{__name__}.{module}")
    return REGISTRY.get(name)


def known_steps() -> list[str]:
    """Every step's name, sorted (every capability's module imported): what an unknown step's error lists."""
    for module in MODULES.values():
        importlib.import_module(f"{__name__}.{module}")
    return sorted(REGISTRY)
