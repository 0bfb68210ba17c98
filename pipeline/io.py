"""File helpers shared by the stages: tables, JSON, and atomic writes.

Every output is written to a temporary file next to its destination and renamed into
place, so a stage that fails half-way never leaves a truncated file behind and the
previous version stays intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` only if the block succeeds.

    Args:
        path: The final destination; its parent directory is created.

    Yields:
        A path in the same directory to write to.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file.

    CSV columns are read without type guessing across chunks (``low_memory=False``), so
    a stray string in a numeric column arrives as text for validation to report.

    Args:
        path: A ``.csv`` or ``.parquet`` file.

    Returns:
        The table.

    Raises:
        ValueError: When the suffix is neither, or the file does not exist.
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: expected a .csv or .parquet file, got suffix '{suffix}'")
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if suffix == ".csv":
        return pd.read_csv(path, low_memory=False)
    return pd.read_parquet(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a table atomically as CSV or Parquet, chosen by the suffix.

    Args:
        frame: The table; its index is not written.
        path: Destination.
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: expected a .csv or .parquet file, got suffix '{suffix}'")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


def write_json(data: Any, path: Path) -> None:
    """Write JSON atomically with sorted keys, so identical data gives identical bytes.

    Args:
        data: JSON-serialisable data.
        path: Destination.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a JSON file.

    Args:
        path: The file.

    Returns:
        The parsed document.
    """
    return json.loads(path.read_text(encoding="utf-8"))
