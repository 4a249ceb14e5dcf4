"""`coral ci`: checks and reports for continuous integration, one module per operation.

- `validate`  — a commit (or weight files) against a schema: names, shapes, dtypes, NaN/inf,
  sizes, drift against a base (`validate_commit`, `validate_files`; `schema.load_schema`)
- `benchmark` — stored vs raw bytes, load time, peak memory, a user's evaluation script
  (`benchmark_commit`); results kept on the commit in `coral.version_control.ci_results.CIResults`
- `report`    — two commits compared for a pull-request comment (`ci_report`)
- `workflow`  — the GitHub Actions workflow `coral ci init --github` writes
"""

from coral.porcelain.ci.benchmark import BenchmarkResult, benchmark_commit
from coral.porcelain.ci.report import CIReport, ci_report
from coral.porcelain.ci.schema import ValidationSchema, load_schema
from coral.porcelain.ci.validate import ValidationResult, validate_commit, validate_files
from coral.porcelain.ci.workflow import write_github_workflow
from coral.version_control.ci_results import CIResults

__all__ = [
    "BenchmarkResult",
    "CIReport",
    "CIResults",
    "ValidationResult",
    "ValidationSchema",
    "benchmark_commit",
    "ci_report",
    "load_schema",
    "validate_commit",
    "validate_files",
    "write_github_workflow",
]
