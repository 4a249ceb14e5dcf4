"""One function per user-facing operation, returning plain dataclasses.

The CLI parses arguments, calls these and prints; the terminal browser and the web dashboard
call the same functions. Each takes an open `Repository` and an optional `progress` callback
(`advance(n)`, one unit per tensor) so every front end can show its own bar.

The names below are imported on first use: importing one porcelain module (as every `coral`
command does at start-up) does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_exports

if TYPE_CHECKING:
    from coral.porcelain.add import AddResult, add_paths
    from coral.porcelain.export import ExportResult, export_commit
    from coral.porcelain.import_ import ImportResult, import_checkpoint
# eager: a lazy name that is also a submodule's would be shadowed by it once that is imported
from coral.porcelain.model_files import model_files

_LAZY = {
    "AddResult": "add",
    "add_paths": "add",
    "ExportResult": "export",
    "export_commit": "export",
    "ImportResult": "import_",
    "import_checkpoint": "import_",
}

__all__ = [
    "AddResult",
    "ExportResult",
    "ImportResult",
    "add_paths",
    "export_commit",
    "import_checkpoint",
    "model_files",
]
__getattr__ = lazy_exports(__name__, _LAZY)
