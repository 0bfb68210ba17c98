"""The paired comparison and the fairness gate on real trained models (no files, no dvc)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.features import target_array
from pipeline.groups import group_metrics
from pipeline.params import Params
from pipeline.schema import coerce_frame
from pipeline.split import split_frame
from pipeline.train import train
from scripts.ci.comparison import compare, metric_function
from scripts.ci.gates import fairness_gates
from tests.helpers import make_credit_frame, make_params


def fitted(frame: pd.DataFrame, params: Params) -> Any:
    parts = split_frame(frame, params.split, params.data.schema)
    return train(parts.train, parts.val, params)


def probabilities(model: Any, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(rows[list(model.feature_names_in_)])[:, 1])


def judge(params: Params, labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray):
    cfg = params.gates.regression
    return {
        metric: compare(
            labels, reference, candidate, metric, tolerance, cfg, params.evaluate.threshold
        )
        for metric, tolerance in cfg.tolerances.items()
    }


@pytest.mark.parametrize("metric", ["roc_auc", "f1", "accuracy", "precision", "recall", "log_loss"])
def test_vectorised_metrics_match_scikit_learn(metric: str) -> None:
    from sklearn import metrics

    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(np.int64)
    probability = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    expected = {
        "roc_auc": metrics.roc_auc_score(labels, probability),
        "log_loss": metrics.log_loss(labels, probability),
        **{
            name: getattr(metrics, f"{name}_score")(labels, probability >= 0.5)
            for name in ("f1", "accuracy", "precision", "recall")
        },
    }[metric]
    assert float(metric_function(metric, 0.5)(labels, probability)) == pytest.approx(expected)


@pytest.mark.slow
def test_a_retraining_pr_from_a_concept_drift_window_passes_and_a_weak_model_fails() -> None:
    params = make_params(**{"train.sklearn.n_estimators": 60})
    schema = params.data.schema
    # The demo's proportions: a year of history and one labelled window of drifted traffic.
    history = coerce_frame(make_credit_frame(20_000, seed=0), schema)
    drifted = make_credit_frame(2_000, seed=9, drift="concept", start=dt.date(2026, 1, 1))
    combined = pd.concat([history, coerce_frame(drifted, schema)], ignore_index=True)
    test = split_frame(combined, params.split, schema).test
    labels = target_array(test, schema)
    reference = probabilities(fitted(history, params), test)
    retrained = probabilities(fitted(combined, params), test)
    weak_params = make_params(**{"train.sklearn.n_estimators": 3, "train.sklearn.max_depth": 1})
    weak = probabilities(fitted(combined, weak_params), test)

    good = judge(params, labels, reference, retrained)
    assert all(c.passed for c in good.values()), {m: c.verdict for m, c in good.items()}
    recent = (test["event_time"] >= pd.Timestamp("2026-01-01")).to_numpy()
    assert recent.sum() > 200
    auc = metric_function("roc_auc", 0.5)
    assert float(auc(labels[recent], retrained[recent])) > float(
        auc(labels[recent], reference[recent])
    )
    bad = judge(params, labels, reference, weak)
    assert not bad["roc_auc"].passed
    assert bad["roc_auc"].high < 0
    assert "beyond the tolerance 0.01: fail" in bad["roc_auc"].verdict


@pytest.mark.slow
def test_the_same_model_retrained_with_other_seeds_never_fails_across_20_seeds() -> None:
    schema = make_params().data.schema
    frame = coerce_frame(make_credit_frame(4_000, seed=3), schema)
    failures = []
    for seed in range(20):
        # Stochastic boosting: each seed draws other rows per tree, the noise of retraining.
        noisy = {"train.sklearn.n_estimators": 40, "train.sklearn.subsample": 0.7}
        first = make_params(**noisy, **{"train.seed": seed})
        second = make_params(**noisy, **{"train.seed": 1_000 + seed})
        test = split_frame(frame, first.split, schema).test
        labels = target_array(test, schema)
        verdicts = judge(
            first,
            labels,
            probabilities(fitted(frame, first), test),
            probabilities(fitted(frame, second), test),
        )
        failures += [f"seed {seed}: {c.verdict}" for c in verdicts.values() if not c.passed]
    assert failures == []


def test_the_fairness_gate_fails_a_model_unfair_to_one_group_and_names_it() -> None:
    params = make_params()
    rng = np.random.default_rng(0)
    rows = make_credit_frame(4_000, seed=2)
    labels = rows["default"].to_numpy()
    fair = np.clip(labels * 0.35 + rng.random(len(rows)) * 0.65, 0, 1)
    unfair = np.where(rows["region"] == "east", rng.random(len(rows)), fair)
    cfg, threshold = params.evaluate.groups, params.evaluate.threshold

    passed = fairness_gates(
        group_metrics(rows, labels, fair, threshold, cfg), params.gates.fairness
    )
    assert [r.name for r in passed] == ["fairness_region", "fairness_product_type", "fairness_age"]
    assert all(r.passed for r in passed), [r.detail for r in passed]
    judged = fairness_gates(
        group_metrics(rows, labels, unfair, threshold, cfg), params.gates.fairness
    )
    (failed,) = [r for r in judged if not r.passed]
    assert failed.name == "fairness_region"
    assert "roc_auc of region=east is 0.4918" in failed.detail
    assert f"(floor {params.gates.fairness.floor})" in failed.detail
    assert f"(limit {params.gates.fairness.max_gap})" in failed.detail


def test_small_groups_are_shown_but_not_judged() -> None:
    params = make_params(**{"gates.fairness.min_rows": 10_000})
    rows = make_credit_frame(500, seed=2)
    labels = rows["default"].to_numpy()
    table = group_metrics(rows, labels, np.full(len(rows), 0.5), 0.5, params.evaluate.groups)
    assert {row.column for row in table} == {"region", "product_type", "age"}
    results = fairness_gates(table, params.gates.fairness)
    assert all(r.passed for r in results)
    assert all("no group with 10000+ rows" in r.detail for r in results)
