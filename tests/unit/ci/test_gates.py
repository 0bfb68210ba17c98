import itertools

import numpy as np
import pytest

from pipeline.groups import GroupRow
from scripts.ci.comparison import Comparison
from scripts.ci.gates import (
    GateResult,
    evaluate_gates,
    floor_gates,
    latency_p95_ms,
    regression_gates,
)
from tests.helpers import make_params

GATES = make_params().gates


def test_floor_gate_names_value_and_threshold():
    passed, failed = floor_gates({"f1": 0.4, "roc_auc": 0.7}, {"f1": 0.3, "roc_auc": 0.75})
    assert passed == GateResult("floor_f1", True, 0.4, 0.3, "f1 = 0.4 (floor 0.3)")
    assert not failed.passed
    assert failed.line() == "gate floor_roc_auc: FAIL — roc_auc = 0.7 (floor 0.75)"
    (missing,) = floor_gates({}, {"recall": 0.1})
    assert not missing.passed


def comparison(metric: str, difference: float, low: float, high: float, passed: bool):
    return Comparison(
        metric, 3000, 0.8, 0.8 + difference, difference, low, high, 0.95, 0.01, passed, "v"
    )


def test_regression_gate_reports_the_drop_in_the_direction_of_each_metric():
    results = regression_gates(
        [
            comparison("roc_auc", -0.02, -0.03, -0.01, False),
            comparison("log_loss", 0.01, -0.01, 0.03, True),
        ],
        {"roc_auc": 0.01, "log_loss": 0.02},
        "main",
    )
    verdicts = {r.name: (r.passed, r.value) for r in results}
    assert verdicts == {"regression_roc_auc": (False, 0.02), "regression_log_loss": (True, 0.01)}
    assert "on the same 3000 rows, difference -0.0200 (95% interval -0.0300 to -0.0100)" in (
        results[0].detail
    )


def test_regression_gate_passes_without_a_reference_and_says_so():
    (result,) = regression_gates(None, {"roc_auc": 0.01}, "no model recorded in dvc.lock at main")
    assert result.passed
    assert "no reference model, nothing to compare (no model recorded" in result.detail


def test_latency_is_the_95th_percentile_of_one_row_calls():
    class Model:
        def predict_proba(self, feeds):
            assert len(feeds["x"]) == 1
            return np.zeros(1)

    ticks = itertools.count(0.0, 0.001)  # every call to the clock advances 1 ms
    p95 = latency_p95_ms(Model(), {"x": np.zeros((40, 1))}, clock=lambda: next(ticks))
    assert p95 == pytest.approx(1.0)


def test_all_gates_in_report_order_and_a_failure_on_bad_data():
    metrics = {"roc_auc": 0.8, "f1": 0.4}
    bad_data = {"passed": False, "problems": [1, 2]}
    groups = [GroupRow("region", "north", 500, 0.8, 0.5, 0.2)]
    results = evaluate_gates(GATES, metrics, None, "first PR", groups, bad_data, 0.1, 0.1)
    assert [r.name for r in results] == [
        "data",
        "floor_f1",
        "floor_roc_auc",
        "regression_f1",
        "regression_roc_auc",
        "fairness_region",
        "latency_p95_ms",
        "model_size_mb",
    ]
    assert [r.name for r in results if not r.passed] == ["data"]
    slow = evaluate_gates(GATES, metrics, None, "first PR", groups, {"passed": True}, 99.0, 500.0)
    assert [r.name for r in slow if not r.passed] == ["latency_p95_ms", "model_size_mb"]
