"""Stage ``split``: reproducible train/validation/test split.

``python -m pipeline.split --data data/raw/dataset.parquet --validation reports/validation.json
--out-dir data/split``

``split.method: hash`` (the default) gives each row the part a hash of its key columns
points to: appending rows (a labelled production window) never moves an old row, so the
test rows of the model on main stay unseen by it and champion and challenger can be
compared on the same rows (docs/gates.md). ``stratified`` keeps the default rate equal
across the three parts but reshuffles when rows are added; ``time`` puts the most recent
rows (by the event-time column) in test and the ones before in validation, as in a backtest.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.exit_codes import ExitCode
from pipeline.io import read_table, write_table
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, SchemaParams, SplitParams, load_params
from pipeline.schema import cast_frame
from pipeline.validate import require_passed

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """The three parts of the data."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def key_columns(cfg: SplitParams, schema: SchemaParams) -> list[str]:
    """The columns that fix a row's part under ``hash``: configured, else features + time."""
    if cfg.key_columns:
        return list(cfg.key_columns)
    return [*schema.features, *([schema.event_time] if schema.event_time else [])]


def hash_position(frame: pd.DataFrame, columns: Sequence[str], seed: int) -> np.ndarray:
    """A number in [0, 1) per row from its values in ``columns`` alone (not its position).

    The same values give the same number in any table, so a row keeps its part however
    many rows are added around it; ``seed`` salts the hash.
    """
    salt = hashlib.md5(str(seed).encode(), usedforsecurity=False).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(frame[list(columns)], index=False, hash_key=salt)
    return (hashed.to_numpy(dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / 2.0**53


def split_frame(frame: pd.DataFrame, cfg: SplitParams, schema: SchemaParams) -> Split:
    """Split a validated table.

    Args:
        frame: The validated table.
        cfg: The ``split`` section of params.yaml.
        schema: The ``data.schema`` section (target and event-time column names).

    Returns:
        Train, validation and test parts.
    """
    n_test = round(len(frame) * cfg.test_fraction)
    n_val = round(len(frame) * cfg.val_fraction)
    if min(n_test, n_val, len(frame) - n_test - n_val) < 1:
        raise ValueError(
            f"split: {len(frame)} rows are too few for val_fraction={cfg.val_fraction} "
            f"and test_fraction={cfg.test_fraction}"
        )
    if cfg.method == "hash":
        position = hash_position(frame, key_columns(cfg, schema), cfg.seed)
        test = position < cfg.test_fraction
        val = ~test & (position < cfg.test_fraction + cfg.val_fraction)
        parts = Split(frame[~test & ~val], frame[val], frame[test])
        empty = [name for name in PARTS if getattr(parts, name).empty]
        if empty:
            raise ValueError(f"split: {len(frame)} rows leave the {', '.join(empty)} part empty")
        return parts
    if cfg.method == "time":
        if schema.event_time is None:
            raise ValueError("split.method: 'time' needs data.schema.event_time")
        ordered = frame.sort_values(schema.event_time, kind="stable", ignore_index=True)
        cut_val, cut_test = len(ordered) - n_test - n_val, len(ordered) - n_test
        return Split(
            ordered.iloc[:cut_val], ordered.iloc[cut_val:cut_test], ordered.iloc[cut_test:]
        )
    rest, test = train_test_split(
        frame, test_size=n_test, stratify=frame[schema.target], random_state=cfg.seed
    )
    train, val = train_test_split(
        rest, test_size=n_val, stratify=rest[schema.target], random_state=cfg.seed
    )
    return Split(train, val, test)


def main(argv: Sequence[str] | None = None) -> int:
    """Read the validated raw table and write train/val/test Parquet files."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.split", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--data", type=Path, required=True, help="raw table")
    parser.add_argument("--validation", type=Path, required=True, help="validation report")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        schema = params.data.schema
        # Validation already checked this file against this schema: only cast here.
        require_passed(args.validation, args.data, schema)
        frame = cast_frame(read_table(args.data), schema)
        parts = split_frame(frame, params.split, params.data.schema)
    except (ParamsError, ValueError) as error:
        print(f"split: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    for name in PARTS:
        part: pd.DataFrame = getattr(parts, name)
        write_table(part.reset_index(drop=True), args.out_dir / f"{name}.parquet")
    sizes = ", ".join(f"{name}={len(getattr(parts, name))}" for name in PARTS)
    print(f"split ({params.split.method}): {sizes} -> {args.out_dir}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
