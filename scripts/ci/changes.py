"""Whether a pull request changes what the model is built or judged from.

train.yml has no ``paths`` filter (a required check skipped by one stays "Pending" and
blocks the PR): it runs on every PR and asks :func:`model_changes` which changed files
affect the model — the pipeline's code, data and parameters, the dependencies and the
environment they install, the Makefile, and the gates and report that judge it. Anything
else (docs, the serving code, the deployment state) gets "nothing to train".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

# Patterns (fnmatch, matched against repository-relative paths; `*` crosses folders).
MODEL_INPUTS: tuple[str, ...] = (
    # The pipeline: stages, their data and parameters.
    "pipeline/*",
    "params.yaml",
    "dvc.yaml",
    "dvc.lock",
    "*.dvc",
    ".dvcignore",
    "data/*",
    # The environment the stages run in.
    "pyproject.toml",
    "requirements/*",
    "Makefile",
    ".github/actions/setup/*",
    # What judges the model and reports on it, and this job itself.
    "scripts/ci/*",
    "scripts/gates.py",
    "scripts/report.py",
    "scripts/changes.py",
    "scripts/storage.py",
    ".github/workflows/train.yml",
)


def model_changes(changed: Iterable[str], patterns: Sequence[str] = MODEL_INPUTS) -> list[str]:
    """The files of ``changed`` that affect the model, in their order."""
    return [path for path in changed if any(fnmatch.fnmatch(path, p) for p in patterns)]
