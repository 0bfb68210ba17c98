"""Validation gates: may this model go further? (``python -m scripts.gates``, ``make gates``).

Reads what the pipeline wrote and the thresholds of the ``gates:`` section of
params.yaml, then checks:

* **data**: the validate stage passed (``reports/validation.json``);
* **floor_<metric>**: each metric at or above its absolute floor;
* **regression_<metric>**: the candidate against the reference model (production's
  champion, else the model of ``--against``) on the SAME test rows: fails on a drop that is
  significant (paired bootstrap, :mod:`scripts.ci.comparison`) and beyond its tolerance
  (skipped, and said so, when the reference has no model yet — the first PR);
* **fairness_<column>**: per group of ``evaluate.groups``, the metric of
  ``gates.fairness`` above its floor and the gap between groups within its limit;
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

from pipeline.features import target_array
from pipeline.groups import GroupRow, group_metrics
from pipeline.io import read_json, read_table
from pipeline.onnx_model import OnnxClassifier, feeds_from_frame
from pipeline.params import DEFAULT_PARAMS_PATH, FairnessParams, GateParams, load_params
from scripts.ci.comparison import Comparison, compare
from scripts.ci.dvc_diff import METRICS_FILE
from scripts.ci.reference import Reference, find_reference

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
    comparisons: list[Comparison] | None, tolerances: dict[str, float], why: str
) -> list[GateResult]:
    """One gate per metric from the paired comparisons (passes, saying why, without any)."""
    if comparisons is None:
        return [
            GateResult(
                f"regression_{name}",
                True,
                None,
                tolerance,
                f"{name}: no reference model, nothing to compare ({why})",
            )
            for name, tolerance in sorted(tolerances.items())
        ]
    return [
        GateResult(
            f"regression_{c.metric}",
            c.passed,
            round(c.drop, 6),
            c.tolerance,
            f"{c.metric} reference {c.reference:.4f} vs candidate {c.candidate:.4f} on the same "
            f"{c.rows} rows, difference {c.difference:+.4f} ({c.confidence:.0%} interval "
            f"{c.low:+.4f} to {c.high:+.4f}): {c.verdict}",
        )
        for c in comparisons
    ]


def fairness_gates(groups: list[GroupRow], cfg: FairnessParams) -> list[GateResult]:
    """Per group column: every judged group at or above the floor, and a bounded gap.

    Groups with fewer than ``cfg.min_rows`` rows, or where the metric is undefined, are
    reported in the table but not judged.
    """
    results = []
    for column in dict.fromkeys(row.column for row in groups):
        judged = {
            row.group: value
            for row in groups
            if row.column == column
            and row.rows >= cfg.min_rows
            and (value := getattr(row, cfg.metric)) is not None
        }
        if not judged:
            detail = f"{column}: no group with {cfg.min_rows}+ rows and a defined {cfg.metric}"
            results.append(GateResult(f"fairness_{column}", True, None, cfg.floor, detail))
            continue
        worst = min(judged, key=judged.__getitem__)
        best = max(judged, key=judged.__getitem__)
        gap = judged[best] - judged[worst]
        problems = []
        if judged[worst] < cfg.floor:
            problems.append(
                f"{cfg.metric} of {column}={worst} is {judged[worst]:.4f} (floor {cfg.floor})"
            )
        if gap > cfg.max_gap:
            problems.append(
                f"{cfg.metric} gap {gap:.4f} between {column}={best} and {column}={worst} "
                f"(limit {cfg.max_gap})"
            )
        detail = "; ".join(problems) or (
            f"{cfg.metric} by {column}: lowest {worst} {judged[worst]:.4f} (floor {cfg.floor}), "
            f"gap {gap:.4f} (limit {cfg.max_gap}) over {len(judged)} groups"
        )
        results.append(
            GateResult(
                f"fairness_{column}", not problems, round(judged[worst], 6), cfg.floor, detail
            )
        )
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
    comparisons: list[Comparison] | None,
    why: str,
    groups: list[GroupRow],
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
    results += regression_gates(comparisons, dict(cfg.regression.tolerances), why)
    results += fairness_gates(groups, cfg.fairness)
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
    """Every gate's result, the reference compared with, and the tables behind the gates."""

    results: list[GateResult]
    reference: str | None
    reference_why: str
    comparisons: list[Comparison]
    groups: list[GroupRow]

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
            "reference_why": self.reference_why,
            "gates": [asdict(result) for result in self.results],
            "comparisons": [comparison.to_json() for comparison in self.comparisons],
            "groups": [row.to_json() for row in self.groups],
        }


@dataclass(frozen=True)
class GateInputs:
    """Where the pipeline wrote what the gates read."""

    params: Path = DEFAULT_PARAMS_PATH
    metrics: Path = Path(METRICS_FILE)
    validation: Path = Path("reports/validation.json")
    onnx: Path = Path("models/model.onnx")
    test: Path = Path("data/split/test.parquet")
    state: Path = Path("bentos/deployments/production.yaml")


def score_reference(reference: Reference, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The reference model's probabilities on the candidate's test rows.

    Raises:
        ValueError: When the reference needs an input the rows lack (a schema change).
    """
    model = OnnxClassifier(reference.model, threads=1)
    missing = [name for name in model.input_names if name not in feeds]
    if missing:
        raise ValueError(
            f"the reference model ({reference.revision}) needs input(s) {missing} that the "
            "candidate's test rows lack: the schema changed, compare by hand"
        )
    return model.predict_proba({name: feeds[name] for name in model.input_names})


def check_model(inputs: GateInputs, against: str | None) -> GateReport:
    """Read the pipeline's outputs, score both models on the test rows, check every gate.

    Args:
        inputs: The files to read.
        against: Git reference whose model is the fallback reference; None skips the
            regression gates.

    Raises:
        ParamsError: params.yaml breaks a rule.
        RuntimeError: A recorded reference model could not be read.
        OSError, ValueError, KeyError: An input is missing or malformed.
    """
    params = load_params(inputs.params)
    schema, threshold = params.data.schema, params.evaluate.threshold
    metrics = read_json(inputs.metrics)["model"]
    validation = read_json(inputs.validation)
    test = read_table(inputs.test)
    labels = target_array(test, schema)
    feeds = feeds_from_frame(test, schema)
    candidate = OnnxClassifier(inputs.onnx, threads=1)
    probability = candidate.predict_proba(feeds)
    reference, why = (
        (None, "--no-reference") if against is None else find_reference(against, inputs.state)
    )
    comparisons = None
    if reference is not None:
        reference_probability = score_reference(reference, feeds)
        comparisons = [
            compare(
                labels,
                reference_probability,
                probability,
                metric,
                tolerance,
                params.gates.regression,
                threshold,
            )
            for metric, tolerance in sorted(params.gates.regression.tolerances.items())
        ]
    groups = group_metrics(test, labels, probability, threshold, params.evaluate.groups)
    head = {name: values[:LATENCY_ROWS] for name, values in feeds.items()}
    results = evaluate_gates(
        params.gates,
        metrics,
        comparisons,
        why,
        groups,
        validation,
        latency_p95_ms(candidate, head),
        inputs.onnx.stat().st_size / 1e6,
    )
    return GateReport(
        results,
        None if reference is None else reference.revision,
        why,
        comparisons or [],
        groups,
    )
