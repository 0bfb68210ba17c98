"""Validation gates: may this model go further? ``python -m scripts.gates`` (``make gates``).

Checks the thresholds of the ``gates:`` section of params.yaml against what the pipeline
wrote (:mod:`scripts.ci.gates`): data validation, metric floors, no significant regression
against the reference model on the same rows (production's champion, else the model of
``--against``), fairness across groups, single-row ONNX latency, model size. Writes
``reports/gates.json`` and exits 1 when a gate fails, printing each with its value and
threshold; 2 when the gates cannot be evaluated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from pipeline.io import write_json
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError
from scripts.ci.gates import GateInputs, check_model


def main(argv: Sequence[str] | None = None) -> int:
    """Check every gate, write the JSON, exit 1 when one fails."""
    parser = argparse.ArgumentParser(prog="python -m scripts.gates", description=__doc__)
    defaults = GateInputs()
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--metrics", type=Path, default=defaults.metrics)
    parser.add_argument("--validation", type=Path, default=defaults.validation)
    parser.add_argument("--onnx", type=Path, default=defaults.onnx)
    parser.add_argument("--test", type=Path, default=defaults.test)
    parser.add_argument(
        "--state", type=Path, default=defaults.state, help="production state (its champion)"
    )
    parser.add_argument(
        "--against", default="main", help="git reference whose model is the fallback reference"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the regression gate")
    parser.add_argument("--out", type=Path, default=Path("reports/gates.json"))
    args = parser.parse_args(argv)
    reference = None if args.no_reference else args.against
    if reference is not None and not reference.strip("0"):
        # GitHub's `before` of a push that created the branch: nothing to compare with.
        print(f"gates: no reference ({reference or 'empty'}): regression gate skipped")
        reference = None
    inputs = GateInputs(
        args.params, args.metrics, args.validation, args.onnx, args.test, args.state
    )
    try:
        report = check_model(inputs, reference)
    except (ParamsError, ValueError, RuntimeError, OSError, KeyError) as error:
        print(f"gates: cannot evaluate: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    write_json(report.to_json(), args.out)
    for result in report.results:
        print(result.line(), file=sys.stdout if result.passed else sys.stderr)
    verdict = "all passed" if report.passed else "FAILED: " + ", ".join(report.failed)
    print(f"gates: {verdict} ({args.out})")
    return ExitCode.OK if report.passed else ExitCode.FOUND_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
