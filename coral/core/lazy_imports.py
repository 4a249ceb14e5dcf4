"""Imports deferred to first use: a package's names (`lazy_exports`) and whole modules
(`lazy_module`), so that `coral log` and other commands that never touch a tensor do not pay
for numpy or for a package's heavy siblings at start-up. `CORAL_TRACE_LAZY=1` prints where each
stand-in was first read, to find what made a light command import numpy."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: each of `names` (name -> module of the
    package that defines it) is imported from that module when it is first asked for."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__


class LazyModule:
    """Stands for a module until an attribute is first read: then imports it and puts the
    real module in the namespace that held this stand-in, so later reads cost nothing.

        if TYPE_CHECKING:
            import numpy as np
        else:
            np = lazy_module("numpy", globals())
    """

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name, self._namespace, self._alias = name, namespace, alias

    def __getattr__(self, attr: str) -> Any:
        if os.environ.get("CORAL_TRACE_LAZY"):  # which read made the import (start-up work)
            import traceback

            traceback.print_stack(limit=4, file=sys.stderr)
        module = importlib.import_module(self._name)  # thread-safe: the import lock
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str = "np") -> Any:
    """A `LazyModule` for `name`, stored by the caller as `alias` in `namespace`."""
    return LazyModule(name, namespace, alias)
