"""Validation gates: may this model go further? ``python -m scripts.gates`` (``make gates``).

Reads what the pipeline wrote and the thresholds of the ``gates:`` section of
params.yaml, then checks:

* **data**: the validate stage passed (``reports/validation.json``);
* **floor_<metric>**: each metric at or above its absolute floor;
* **regression_<metric>**: no drop against the reference (``main``) beyond its tolerance,
  from ``dvc metrics diff <ref> --json`` (skipped, and said so, when the reference has no
  metrics yet — the first PR of a repository);
* **latency_p95_ms**: p95 of single-row ONNX Runtime inference on test rows;
* **model_size_mb**: size of the ONNX file.

Writes ``reports/gates.json`` (the PR report reads it) and exits 1 when a gate fails,
printing each failed gate with its value and threshold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import read_json, read_table, write_json
from pipeline.onnx_model import OnnxClassifier, feeds_from_frame
from pipeline.params import GateParams, ParamsError, load_params

LATENCY_ROWS = 300
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class GateResult:
    """One gate: passed or not, with the value and the threshold that decided it."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str

    def line(self) -> str:
        """One line for logs and the PR report."""
        verdict = "PASS" if self.passed else "FAIL"
        return f"gate {self.name}: {verdict} — {self.detail}"


def floor_gates(metrics: dict[str, float], floors: dict[str, float]) -> list[GateResult]:
    """Each metric at or above its floor (a missing metric fails)."""
    results = []
    for name, floor in sorted(floors.items()):
        value = metrics.get(name)
        passed = value is not None and value >= floor
        detail = f"{name} = {value} (floor {floor})" if value is not None else f"{name} missing"
        results.append(GateResult(f"floor_{name}", passed, value, floor, detail))
    return results


def regression_gates(
    diff: dict[str, dict[str, float | None]] | None, tolerances: dict[str, float]
) -> list[GateResult]:
    """No metric drops against the reference by more than its tolerance.

    Args:
        diff: ``{metric: {"old": ..., "new": ...}}`` for the model's metrics, or None when
            the reference has no metrics.
        tolerances: Largest allowed drop per metric (log_loss: largest allowed rise).

    Returns:
        One result per metric.
    """
    results = []
    for name, tolerance in sorted(tolerances.items()):
        entry = (diff or {}).get(name) or {}
        old, new = entry.get("old"), entry.get("new")
        if old is None or new is None:
            detail = f"{name}: no reference value, nothing to compare (tolerance {tolerance})"
            results.append(GateResult(f"regression_{name}", True, None, tolerance, detail))
            continue
        # log_loss is better when lower; every other metric when higher.
        drop = (new - old) if name == "log_loss" else (old - new)
        passed = drop <= tolerance
        detail = f"{name} {old} -> {new} (drop {drop:.4f}, tolerance {tolerance})"
        results.append(GateResult(f"regression_{name}", passed, round(drop, 6), tolerance, detail))
    return results


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


def latency_p95_ms(
    model: OnnxClassifier,
    feeds: dict[str, np.ndarray],
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """p95 over rows of the time ONNX Runtime takes to score one row, in milliseconds."""
    rows = len(next(iter(feeds.values())))
    timings = []
    for index in range(rows):
        one = {name: values[index : index + 1] for name, values in feeds.items()}
        start = clock()
        model.predict_proba(one)
        timings.append((clock() - start) * 1_000)
    return float(np.percentile(timings, 95))


def evaluate_gates(
    cfg: GateParams,
    metrics: dict[str, float],
    diff: dict[str, Any] | None,
    validation: dict[str, Any],
    latency_ms: float,
    size_mb: float,
) -> list[GateResult]:
    """All gates, in report order."""
    problems = len(validation.get("problems", []))
    results = [
        GateResult(
            "data",
            bool(validation.get("passed")),
            float(problems),
            0.0,
            f"data validation {'passed' if validation.get('passed') else 'failed'} "
            f"({problems} problem(s), reports/validation.json)",
        )
    ]
    results += floor_gates(metrics, dict(cfg.floors))
    results += regression_gates(diff, dict(cfg.max_regression))
    results.append(
        GateResult(
            "latency_p95_ms",
            latency_ms <= cfg.latency_p95_ms,
            round(latency_ms, 4),
            cfg.latency_p95_ms,
            f"single-row ONNX p95 {latency_ms:.3f} ms (budget {cfg.latency_p95_ms} ms)",
        )
    )
    results.append(
        GateResult(
            "model_size_mb",
            size_mb <= cfg.model_size_mb,
            round(size_mb, 4),
            cfg.model_size_mb,
            f"ONNX file {size_mb:.3f} MB (budget {cfg.model_size_mb} MB)",
        )
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Check every gate, write the JSON, exit 1 when one fails."""
    parser = argparse.ArgumentParser(prog="python -m scripts.gates", description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--metrics", type=Path, default=Path(METRICS_FILE))
    parser.add_argument("--validation", type=Path, default=Path("reports/validation.json"))
    parser.add_argument("--onnx", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--test", type=Path, default=Path("data/split/test.parquet"))
    parser.add_argument("--against", default="main", help="git reference for the regression gate")
    parser.add_argument("--no-reference", action="store_true", help="skip the regression gate")
    parser.add_argument("--out", type=Path, default=Path("reports/gates.json"))
    args = parser.parse_args(argv)
    if not args.no_reference and not args.against.strip("0"):
        # GitHub's `before` of a push that created the branch: nothing to compare with.
        print(f"gates: no reference ({args.against or 'empty'}): regression gate skipped")
        args.no_reference = True
    try:
        params = load_params(args.params)
        metrics = read_json(args.metrics)["model"]
        validation = read_json(args.validation)
        diff = None if args.no_reference else metrics_diff(args.against)
        test = read_table(args.test).head(LATENCY_ROWS)
        model = OnnxClassifier(args.onnx, threads=1)
        latency = latency_p95_ms(model, feeds_from_frame(test, params.data.schema))
    except (ParamsError, ValueError, RuntimeError, OSError, KeyError) as error:
        print(f"gates: cannot evaluate: {error}", file=sys.stderr)
        return 2
    results = evaluate_gates(
        params.gates, metrics, diff, validation, latency, args.onnx.stat().st_size / 1e6
    )
    passed = all(result.passed for result in results)
    write_json(
        {
            "passed": passed,
            "reference": None if diff is None else args.against,
            "gates": [asdict(result) for result in results],
        },
        args.out,
    )
    for result in results:
        print(result.line(), file=sys.stdout if result.passed else sys.stderr)
    failed = [result.name for result in results if not result.passed]
    print(f"gates: {'all passed' if passed else 'FAILED: ' + ', '.join(failed)} ({args.out})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
