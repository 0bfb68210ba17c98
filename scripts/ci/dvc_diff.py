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


def metrics_diff(reference: str, metrics_file: str = METRICS_FILE) -> dict[str, Any] | None:
    """The model's metrics against a git reference (see :func:`dvc_diff`).

    Returns:
        ``{metric: {"old", "new"}}`` for keys under ``model.``; None when the reference
        has no metrics file (dvc reports nothing for it).

    Raises:
        RuntimeError: When dvc fails.
    """
    entries = dvc_diff("metrics", reference).get(metrics_file, {})
    model = {
        key.removeprefix("model."): value
        for key, value in entries.items()
        if key.startswith("model.")
    }
    if not model or all(value.get("old") is None for value in model.values()):
        return None
    return model


def flat_diff(kind: str, reference: str) -> dict[str, dict[str, Any]]:
    """:func:`dvc_diff` with the files merged: ``{key: entry}``."""
    return {
        key: entry for values in dvc_diff(kind, reference).values() for key, entry in values.items()
    }
