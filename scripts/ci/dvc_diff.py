"""Diffs against a git reference through DVC: ``dvc metrics diff`` / ``dvc params diff``."""

from __future__ import annotations

import json
import subprocess
from typing import Any

METRICS_FILE = "metrics.json"


def dvc_diff(kind: str, reference: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``dvc {metrics,params} diff <reference> --json``: ``{file: {key: {"old", "new", ...}}}``.

    Raises:
        RuntimeError: When dvc fails (e.g. an unknown reference in a shallow clone).
    """
    command = ["dvc", kind, "diff", reference, "--json"]
    if kind == "metrics":
        command.append("--all")  # unchanged metrics too: the report lists them all
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed: {result.stderr.strip()} "
            "(a shallow clone lacks the reference: check out with fetch-depth 0)"
        )
    document: dict[str, dict[str, dict[str, Any]]] = json.loads(result.stdout or "{}")
    return document


def flat_diff(kind: str, reference: str) -> dict[str, dict[str, Any]]:
    """:func:`dvc_diff` with the files merged: ``{key: entry}``."""
    return {
        key: entry for values in dvc_diff(kind, reference).values() for key, entry in values.items()
    }
