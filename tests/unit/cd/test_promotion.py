"""The A/B decision rule: guardrails, thin data, the sequential test and its error rates."""

from __future__ import annotations

import math

import pytest

from scripts.cd.promotion import Figures, decide, msprt_log_lr
from scripts.cd.state import Experiment, Guardrails
from scripts.dev.ab_simulation import simulate

EXPERIMENT = Experiment(min_samples_per_arm=500, guardrails=Guardrails(min_requests=200))


def figures(
    feedback: int, correct: int, requests: int = 1000, errors: int = 0, p95: float = 10.0
) -> Figures:
    return Figures(requests=requests, errors=errors, feedback=feedback, correct=correct, p95_ms=p95)


def test_a_slower_challenger_is_rolled_back_whatever_its_accuracy() -> None:
    decision = decide(figures(600, 500), figures(600, 590, p95=16.0), EXPERIMENT, 2.0)
    assert decision.outcome == "rollback"
    assert "p95 16.0 ms vs champion 10.0 ms" in decision.reason


def test_a_challenger_with_more_errors_is_rolled_back() -> None:
    decision = decide(figures(600, 500), figures(600, 590, errors=30), EXPERIMENT, 2.0)
    assert decision.outcome == "rollback"
    assert "error rate 0.0300" in decision.reason


def test_guardrails_wait_for_enough_requests() -> None:
    decision = decide(
        figures(10, 9, requests=100), figures(10, 9, requests=100, p95=99.0), EXPERIMENT, 1.0
    )
    assert decision.outcome == "continue"


def test_thin_data_continues_then_rolls_back_at_the_deadline() -> None:
    assert decide(figures(400, 300), figures(400, 390), EXPERIMENT, 5.0).outcome == "continue"
    late = decide(figures(400, 300), figures(400, 390), EXPERIMENT, 200.0)
    assert late.outcome == "rollback"
    assert "insufficient data" in late.reason


def test_significant_lift_promotes_and_significant_drop_rolls_back() -> None:
    better = decide(figures(2000, 1700), figures(2000, 1800), EXPERIMENT, 10.0)
    assert better.outcome == "promote"
    assert better.statistic is not None
    assert better.threshold == pytest.approx(math.log(20), abs=1e-3)
    worse = decide(figures(2000, 1800), figures(2000, 1700), EXPERIMENT, 10.0)
    assert worse.outcome == "rollback"
    same = decide(figures(2000, 1720), figures(2000, 1722), EXPERIMENT, 10.0)
    assert same.outcome == "continue"


def test_msprt_is_zero_evidence_without_difference() -> None:
    log_lr, difference = msprt_log_lr(850, 1000, 850, 1000, 0.05)
    assert float(difference) == 0.0
    assert float(log_lr) < 0


def test_false_promotions_stay_below_alpha_under_hourly_looks() -> None:
    experiment = Experiment()
    outcome = simulate(experiment, 0.86, 0.0, 1000, n_experiments=400, seed=1)
    bound = experiment.significance_level + 2 * math.sqrt(0.05 * 0.95 / 400)
    assert outcome.promote <= bound
    assert outcome.peeking_promote > outcome.promote  # what the sequential test prevents


def test_a_two_point_lift_is_found() -> None:
    outcome = simulate(Experiment(), 0.86, 0.02, 1000, n_experiments=200, seed=2)
    assert outcome.promote >= 0.9
