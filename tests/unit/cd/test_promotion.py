"""The A/B decision rule: guardrails, thin data, the sequential test and its error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scripts.cd import prometheus
from scripts.cd.promotion import (
    Figures,
    LatencyHistogram,
    decide,
    error_increase_lower_bound,
    msprt_log_lr,
    slower_than,
    value_at_rank,
)
from scripts.cd.state import Experiment, Guardrails
from scripts.dev.ab_simulation import (
    BENTOML_BUCKETS_MS,
    LatencyNoise,
    simulate,
    simulate_guardrails,
)

EXPERIMENT = Experiment(min_samples_per_arm=500, guardrails=Guardrails(min_requests=200))


def histogram(cumulative: tuple[int, ...], count: int) -> LatencyHistogram:
    """BentoML's buckets (ms), the first ``len(cumulative)`` given, the rest all requests."""
    rest = (count,) * (len(BENTOML_BUCKETS_MS) - len(cumulative))
    return LatencyHistogram(BENTOML_BUCKETS_MS, (*cumulative, *rest), count)


def measured(latencies_ms: np.ndarray) -> LatencyHistogram:
    """The histogram Prometheus would hold for these request durations."""
    cumulative = np.searchsorted(np.sort(latencies_ms), BENTOML_BUCKETS_MS, side="right")
    return LatencyHistogram(
        BENTOML_BUCKETS_MS, tuple(int(c) for c in cumulative), latencies_ms.size
    )


def lognormal_ms(median_ms: float, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(math.log(median_ms), 0.5, n)


def figures(
    feedback: int,
    correct: int,
    requests: int = 1000,
    errors: int = 0,
    latency: LatencyHistogram | None = None,
) -> Figures:
    p95 = latency.quantile(0.95) if latency is not None else None
    return Figures(requests, errors, feedback, correct, p95_ms=p95, latency=latency)


# 300 requests per arm: the challenger's p95 (histogram_quantile) is x1.70 the champion's.
NOISY_CHAMPION = histogram((20, 150, 285, 297), 300)
NOISY_CHALLENGER = histogram((20, 150, 271, 291, 298), 300)


def test_prometheus_interpolation_is_reproduced() -> None:
    assert NOISY_CHAMPION.quantile(0.95) == pytest.approx(25.0)
    assert NOISY_CHALLENGER.quantile(0.95) == pytest.approx(42.5)
    assert float(value_at_rank(BENTOML_BUCKETS_MS, NOISY_CHAMPION.cumulative, 300, 296)) == (
        pytest.approx(47.917, abs=1e-3)
    )
    # 291 took at most 50 ms, 298 at most 100 ms: 294.5 at most 75 ms (linear), 295.1 in
    # log-latency; the count of slower ones is rounded down.
    slower = [
        float(slower_than(BENTOML_BUCKETS_MS, NOISY_CHALLENGER.cumulative, 300, 75.0, geometric))
        for geometric in (False, True)
    ]
    assert slower == [5.0, 4.0]
    assert float(value_at_rank(BENTOML_BUCKETS_MS, NOISY_CHAMPION.cumulative, 300, 301)) == math.inf
    assert histogram((), 0).quantile(0.95) is None


def test_identical_arms_with_a_noisy_p95_ratio_of_1_7_are_not_rolled_back() -> None:
    champion = figures(600, 500, requests=300, latency=NOISY_CHAMPION)
    challenger = figures(600, 500, requests=300, latency=NOISY_CHALLENGER)
    assert challenger.p95_ms is not None
    assert champion.p95_ms is not None
    assert challenger.p95_ms / champion.p95_ms == pytest.approx(1.70)  # > 1.5: the old rule
    experiment = Experiment(min_samples_per_arm=500, guardrails=Guardrails(min_requests=50))
    decision = decide(champion, challenger, experiment, 0.5)
    assert decision.outcome == "continue"
    assert decision.reason.startswith("not significant yet: accuracy")


def test_a_truly_twice_as_slow_challenger_is_rolled_back_whatever_its_accuracy() -> None:
    champion = figures(600, 500, requests=2000, latency=measured(lognormal_ms(8.0, 2000, 1)))
    challenger = figures(600, 590, requests=2000, latency=measured(lognormal_ms(16.0, 2000, 2)))
    decision = decide(champion, challenger, EXPERIMENT, 2.0)
    assert decision.outcome == "rollback"
    assert decision.reason.startswith("guardrail: challenger p95 ")
    assert "binomial test against 5 %" in decision.reason


def test_the_same_latencies_drawn_twice_are_not_rolled_back() -> None:
    champion = figures(600, 590, requests=2000, latency=measured(lognormal_ms(8.0, 2000, 1)))
    challenger = figures(600, 590, requests=2000, latency=measured(lognormal_ms(8.0, 2000, 3)))
    assert decide(champion, challenger, EXPERIMENT, 2.0).outcome == "continue"


def test_guardrails_wait_for_enough_requests() -> None:
    # Ten times slower and half the requests failing: still below min_requests (200).
    champion = figures(10, 9, requests=150, latency=measured(lognormal_ms(8.0, 150, 1)))
    challenger = figures(
        10, 9, requests=150, errors=75, latency=measured(lognormal_ms(80.0, 150, 2))
    )
    decision = decide(champion, challenger, EXPERIMENT, 1.0)
    assert decision.outcome == "continue"
    assert "insufficient data" in decision.reason


def test_a_challenger_with_significantly_more_errors_is_rolled_back() -> None:
    decision = decide(figures(600, 500, errors=5), figures(600, 590, errors=30), EXPERIMENT, 2.0)
    assert decision.outcome == "rollback"
    assert "error rate 0.0300 vs champion 0.0050" in decision.reason
    assert "at least +0.0117 at 99% confidence" in decision.reason


def test_an_error_increase_within_the_noise_is_not_rolled_back() -> None:
    # +1.3 points observed (the old rule: > 0.01, rollback); at 99 % it may be +0.17.
    decision = decide(figures(600, 590, errors=5), figures(600, 590, errors=18), EXPERIMENT, 2.0)
    assert decision.outcome == "continue"
    assert float(error_increase_lower_bound(5, 1000, 18, 1000, 0.99)) == pytest.approx(
        0.00168, abs=1e-5
    )


def test_the_error_bound_is_newcombes_hybrid_score_interval() -> None:
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for errors_a, n_a, errors_b, n_b in ((5, 1000, 30, 1000), (0, 1800, 0, 200), (3, 50, 9, 60)):
        lower, _ = proportion.confint_proportions_2indep(
            errors_b, n_b, errors_a, n_a, method="newcomb", compare="diff", alpha=0.02
        )
        ours = error_increase_lower_bound(errors_a, n_a, errors_b, n_b, 0.99)
        assert float(ours) == pytest.approx(float(lower), abs=1e-12)


def test_guardrail_false_rollbacks_and_power_under_noise() -> None:
    guardrails = Guardrails()
    noise = LatencyNoise()
    same = simulate_guardrails(guardrails, noise, (1800, 200), 168, n_experiments=300, seed=4)
    assert same.latency <= 0.01
    assert same.errors <= 0.01
    assert same.point_latency > 0.05  # what two point estimates did
    slower = simulate_guardrails(guardrails, noise, (1800, 200), 24, 100, seed=5, slowdown=2.0)
    assert slower.latency >= 0.95
    erroring = simulate_guardrails(
        guardrails, noise, (1800, 200), 24, 100, seed=6, error_increase=0.03
    )
    assert erroring.errors >= 0.95
    short = guardrails.model_copy(update={"min_requests": 50})
    one_look = simulate_guardrails(short, noise, (300, 300), 1, n_experiments=1000, seed=7)
    assert one_look.latency <= 0.01
    assert one_look.point_latency >= 0.1


def test_figures_reads_the_latency_histogram_since_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answer(
        base_url: str, promql: str, at: float, labels: tuple[str, ...]
    ) -> dict[tuple[str, ...], float]:
        if labels == ("variant", "le"):
            if at == 100.0:
                return {("champion", "0.005"): 10.0, ("champion", "+Inf"): 40.0}
            # The 5 ms bucket restarted (a reset): counted since the restart.
            return {
                ("champion", "0.01"): 50.0,
                ("champion", "0.005"): 4.0,
                ("champion", "+Inf"): 140.0,
            }
        return {("champion",): 1000.0 if at == 200.0 else 0.0}

    monkeypatch.setattr(prometheus, "query_by", answer)
    champion = prometheus.figures("http://prometheus", 100.0, 200.0)["champion"]
    assert champion.requests == 1000
    assert champion.latency == LatencyHistogram((5.0, 10.0), (4, 50), 100)
    assert champion.p95_ms == 10.0  # rank 95 is past the last finite bucket: its bound


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
