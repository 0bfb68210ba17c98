"""Validation gates: may this model go further? (``python -m scripts.gates``, ``make gates``).

Reads what the pipeline wrote and the thresholds of the ``gates:`` section of
params.yaml, then checks:

* **data**: the validate stage passed (``reports/validation.json``);
* **floor_<metric>**: each metric at or above its absolute floor;
* **regression_<metric>**: no drop against the reference (``main``) beyond its tolerance,
  from ``dvc metrics diff <ref> --json`` (skipped, and said so, when the reference has no
  metrics yet — the first PR of a repository);
* **latency_p95_ms**: p95 of single-row ONNX Runtime inference on test rows;
* **model_size_mb**: size of the ONNX file.

:func:`check_model` returns a :class:`GateReport`, whose JSON is ``reports/gates.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import read_json, read_table
from pipeline.onnx_model import OnnxClassifier, feeds_from_frame
from pipeline.params import DEFAULT_PARAMS_PATH, GateParams, load_params
from scripts.ci.dvc_diff import METRICS_FILE, metrics_diff

LATENCY_ROWS = 300


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


@dataclass(frozen=True)
class GateReport:
    """Every gate's result and the reference the regression gates compared with."""

    results: list[GateResult]
    reference: str | None

    @property
    def passed(self) -> bool:
        """Whether every gate passed."""
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> list[str]:
        """The names of the gates that failed."""
        return [result.name for result in self.results if not result.passed]

    def to_json(self) -> dict[str, Any]:
        """The document ``reports/gates.json`` holds (the PR report reads it)."""
        return {
            "passed": self.passed,
            "reference": self.reference,
            "gates": [asdict(result) for result in self.results],
        }


@dataclass(frozen=True)
class GateInputs:
    """Where the pipeline wrote what the gates read."""

    params: Path = DEFAULT_PARAMS_PATH
    metrics: Path = Path(METRICS_FILE)
    validation: Path = Path("reports/validation.json")
    onnx: Path = Path("models/model.onnx")
    test: Path = Path("data/split/test.parquet")


def check_model(inputs: GateInputs, reference: str | None) -> GateReport:
    """Read the pipeline's outputs, measure latency and size, and check every gate.

    Args:
        inputs: The files to read.
        reference: Git reference for the regression gates; None skips them.

    Raises:
        ParamsError: params.yaml breaks a rule.
        RuntimeError: dvc could not diff against the reference.
        OSError, ValueError, KeyError: An input is missing or malformed.
    """
    params = load_params(inputs.params)
    metrics = read_json(inputs.metrics)["model"]
    validation = read_json(inputs.validation)
    diff = None if reference is None else metrics_diff(reference)
    test = read_table(inputs.test).head(LATENCY_ROWS)
    model = OnnxClassifier(inputs.onnx, threads=1)
    latency = latency_p95_ms(model, feeds_from_frame(test, params.data.schema))
    results = evaluate_gates(
        params.gates, metrics, diff, validation, latency, inputs.onnx.stat().st_size / 1e6
    )
    return GateReport(results, None if diff is None else reference)
