"""Stage ``validate``: check the raw table against ``data.schema`` and write a report.

``python -m pipeline.validate --data data/raw/dataset.parquet --report reports/validation.json``

Exits 1 when the data breaks the schema, after printing one line per broken rule
(column, rule, number of rows) and writing the same to the JSON report. The stage has
no data output, so a failure cannot overwrite anything downstream: ``split`` only runs
on a report that passed, for the exact file that was checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from pipeline.io import read_json, read_table, write_json
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, SchemaParams, load_params
from pipeline.schema import validate_frame


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes (the same digest DVC records), read in blocks.

    Args:
        path: The file.

    Returns:
        The hex digest.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def schema_md5(schema: SchemaParams) -> str:
    """Digest of the schema a report was made with (stages after validate depend on it)."""
    text = json.dumps(schema.model_dump(mode="json"), sort_keys=True)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def require_passed(report_path: Path, data_path: Path, schema: SchemaParams) -> None:
    """Refuse to go on unless the report says this exact file passed this exact schema.

    Args:
        report_path: reports/validation.json written by this stage.
        data_path: The data file about to be used.
        schema: The schema the data is about to be read with.

    Raises:
        ValueError: When the report failed, is missing, or was made for other data or
            another schema.
    """
    if not report_path.is_file():
        raise ValueError(f"{report_path}: validation report not found; run the validate stage")
    report = read_json(report_path)
    if not report.get("passed"):
        raise ValueError(f"{report_path}: data validation failed; see its 'problems'")
    if report.get("data_md5") != file_md5(data_path):
        raise ValueError(f"{report_path}: was written for other data than {data_path}; re-validate")
    if report.get("schema_md5") != schema_md5(schema):
        raise ValueError(f"{report_path}: was written for another data.schema; re-validate")


def main(argv: Sequence[str] | None = None) -> int:
    """Validate, write the report, and exit 1 with the problems when the data is bad."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.validate", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--data", type=Path, required=True, help="raw table")
    parser.add_argument("--report", type=Path, required=True, help="JSON report to write")
    args = parser.parse_args(argv)
    try:
        schema = load_params(args.params).data.schema
        frame = read_table(args.data)
    except (ParamsError, ValueError) as error:
        print(f"validate: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    report, _ = validate_frame(frame, schema)
    fingerprint = {
        "data": str(args.data),
        "data_md5": file_md5(args.data),
        # Stages after this one depend on the report rather than on the whole schema in
        # params.yaml: a schema change changes this digest, hence re-runs them.
        "schema_md5": schema_md5(schema),
    }
    write_json({**report.to_json(), **fingerprint}, args.report)
    if not report.passed:
        print(
            f"validate: {args.data} breaks {len(report.problems)} rule(s) of data.schema "
            f"(report: {args.report}):",
            file=sys.stderr,
        )
        for problem in report.problems:
            print(f"  {problem.message()}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    print(f"validate: {report.n_rows} rows, {report.n_columns} columns passed ({args.report})")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
