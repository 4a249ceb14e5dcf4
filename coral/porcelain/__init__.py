"""One function per user-facing operation, returning plain dataclasses.

The CLI parses arguments, calls these and prints; the terminal browser and the web dashboard
call the same functions. Each takes an open `Repository` and an optional `progress` callback
(`advance(n)`, one unit per tensor) so every front end can show its own bar.
"""

from coral.porcelain.add import AddResult, add_paths
from coral.porcelain.export import ExportResult, export_commit
from coral.porcelain.import_ import ImportResult, import_checkpoint
from coral.porcelain.model_files import model_files

__all__ = [
    "AddResult",
    "ExportResult",
    "ImportResult",
    "add_paths",
    "export_commit",
    "import_checkpoint",
    "model_files",
]
