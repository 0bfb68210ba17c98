"""Stage ``ingest``: bring the source data (generator or a file) into data/raw as Parquet.

Labelled production windows under ``data.windows_dir`` (added by retraining PRs, tracked
with DVC) are appended, so a retrained model learns from the drifted traffic too.

``python -m pipeline.ingest --params params.yaml --out data/raw/dataset.parquet``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.exit_codes import ExitCode
from pipeline.generate import Window, write_dataset
from pipeline.io import read_table, write_table
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, load_params


def main(argv: Sequence[str] | None = None) -> int:
    """Write the raw table; the content is checked by the next stage, not here."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.ingest", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--out", type=Path, required=True, help="raw table (.parquet)")
    args = parser.parse_args(argv)
    try:
        data = load_params(args.params).data
        if data.source == "generator":
            gen = data.generator
            window = Window(missing_rate=gen.missing_rate, start=gen.start, days=gen.days)
            write_dataset(args.out, gen.n_rows, gen.seed, window)
        else:
            write_table(read_table(data.path), args.out)
        windows = sorted(data.windows_dir.glob("*.parquet")) if data.windows_dir.is_dir() else []
        if windows:
            base = read_table(args.out)
            parts = [base, *(read_table(path)[list(base.columns)] for path in windows)]
            write_table(pd.concat(parts, ignore_index=True), args.out)
    except (ParamsError, ValueError, KeyError) as error:
        print(f"ingest: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    added = f" + {len(windows)} labelled window(s) from {data.windows_dir}" if windows else ""
    print(f"ingest: {data.source}{added} -> {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
