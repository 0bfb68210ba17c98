"""How often the hourly A/B decision is wrong: ``python -m scripts.dev.ab_simulation``.

Simulates many experiments on synthetic hourly counts — no servers: each hour, each arm
receives its share of labelled predictions, correct with the arm's true accuracy. The
decision rule of :func:`scripts.promote.decide` (minimum samples per arm, then the mSPRT,
rollback at the maximum duration) is evaluated **at every simulated hour**, as the hourly
``promote.yml`` does. Reports:

* A/A (identical models): the false-promotion rate, to compare with the significance level;
  and, for contrast, the same data judged by a fixed-horizon two-proportion z-test
  evaluated every hour ("peeking"), which the sequential test replaces;
* power: how often, and after how many hours, a challenger with a true accuracy lift is
  promoted.

``--table guardrails`` measures the guardrails the same way (:func:`simulate_guardrails`):
hourly latency histograms (BentoML's buckets) and 5xx counts per arm from a noise model of
a busy machine (:class:`LatencyNoise`), judged at every hour by the rule of
:mod:`scripts.cd.promotion` and, for contrast, by comparing two point estimates. Reports
the false-rollback rate of identical models and the power on a slower or more erroring
challenger.

The figures in docs/ab-testing.md come from this command.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scripts.cd.promotion import (
    QUANTILE,
    error_increase_lower_bound,
    msprt_log_lr,
    p95_evidence,
    value_at_rank,
)
from scripts.cd.state import Experiment, Guardrails


@dataclass(frozen=True)
class Outcomes:
    """Shares of experiments ending each way, and the median hours to a verdict."""

    promote: float
    rollback: float
    median_hours_to_promote: float | None
    peeking_promote: float


def simulate(
    experiment: Experiment,
    accuracy: float,
    lift: float,
    labelled_per_hour: int,
    n_experiments: int,
    seed: int,
) -> Outcomes:
    """Run ``n_experiments`` experiments of ``max_duration_hours`` hourly looks each."""
    rng = np.random.default_rng(seed)
    hours = int(experiment.max_duration_hours)
    share = experiment.challenger_weight / 100
    n_challenger = max(1, round(labelled_per_hour * share))
    n_champion = max(1, labelled_per_hour - n_challenger)
    shape = (n_experiments, hours)
    correct_a = rng.binomial(n_champion, accuracy, shape).cumsum(axis=1)
    correct_b = rng.binomial(n_challenger, min(accuracy + lift, 1.0), shape).cumsum(axis=1)
    n_a = n_champion * np.arange(1, hours + 1)
    n_b = n_challenger * np.arange(1, hours + 1)
    log_lr, difference = msprt_log_lr(correct_a, n_a, correct_b, n_b, experiment.mixture_sd)
    enough = np.minimum(n_a, n_b) >= experiment.min_samples_per_arm
    crossed = enough & (log_lr >= math.log(1 / experiment.significance_level))
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    decided = first >= 0
    rows = np.arange(n_experiments)
    direction = difference[rows, np.maximum(first, 0)]
    promoted = decided & (direction > 0)
    rolled_back = ~promoted  # significant and worse, or undecided at the end
    # The fixed-horizon z-test, peeked at every hour (what mSPRT protects against).
    pooled = (correct_a + correct_b) / (n_a + n_b)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n_a + 1 / n_b), 1e-12))
    z = difference / se
    peek = enough & (z > stats.norm.ppf(1 - experiment.significance_level / 2))
    return Outcomes(
        promote=float(promoted.mean()),
        rollback=float(rolled_back.mean()),
        median_hours_to_promote=float(np.median(first[promoted] + 1)) if promoted.any() else None,
        peeking_promote=float(peek.any(axis=1).mean()),
    )


# BentoML's default duration buckets (bentoml/_internal/utils/metrics.py), in ms: the
# service keeps them, so the guardrail sees latencies at this resolution.
BENTOML_BUCKETS_MS = (
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    30000.0, 60000.0, 120000.0, 180000.0,
)  # fmt: skip


@dataclass(frozen=True)
class LatencyNoise:
    """How latencies and 5xx of identical models vary on a busy machine.

    Per request: a lognormal body (``median_ms``, log-sd ``spread``), or a stall (a GC pause,
    a noisy neighbour: lognormal around ``stall_median_ms``). Per hour: a load factor of the
    machine (both arms) and one per arm (its process), both lognormal; a share of stalled
    requests per arm drawn from a gamma distribution (mean ``stall_share``, shape
    ``stall_burstiness``: small values give hours with many stalls); a 5xx rate per arm
    drawn the same way around ``error_rate``.
    """

    median_ms: float = 8.0
    spread: float = 0.5
    machine_load_sd: float = 0.3
    arm_load_sd: float = 0.1
    stall_share: float = 0.02
    stall_burstiness: float = 2.0
    stall_median_ms: float = 150.0
    stall_spread: float = 0.5
    error_rate: float = 0.005
    error_burstiness: float = 2.0


# A stress case: one process's hours with 10-20 % stalled requests are common (the
# binomial test assumes independent requests; these hours are not).
BURSTY = LatencyNoise(machine_load_sd=0.5, arm_load_sd=0.2, stall_share=0.03, stall_burstiness=0.5)


@dataclass(frozen=True)
class GuardrailOutcomes:
    """Shares of experiments rolled back by each guardrail (any hourly look)."""

    latency: float
    errors: float
    either: float
    median_hours_to_rollback: float | None
    # The rule this replaces: two point estimates compared.
    point_latency: float
    point_errors: float


def _hourly_buckets(
    rng: np.random.Generator, noise: LatencyNoise, requests: int, scale: np.ndarray
) -> np.ndarray:
    """One arm's requests per latency bucket for each experiment-hour: (..., buckets + 1)."""
    stall_share = rng.gamma(
        noise.stall_burstiness, noise.stall_share / noise.stall_burstiness, scale.shape
    ).clip(max=1.0)
    edges = np.log(BENTOML_BUCKETS_MS)
    body = stats.norm.cdf((edges - np.log(noise.median_ms * scale)[..., None]) / noise.spread)
    stalled = stats.norm.cdf(
        (edges - np.log(noise.stall_median_ms * scale)[..., None]) / noise.stall_spread
    )
    cdf = (1 - stall_share)[..., None] * body + stall_share[..., None] * stalled
    probabilities = np.clip(np.diff(cdf, prepend=0.0, append=1.0), 0.0, None)
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    counts: np.ndarray = rng.multinomial(requests, probabilities)
    return counts


def _hourly_errors(
    rng: np.random.Generator,
    noise: LatencyNoise,
    requests: int,
    increase: float,
    shape: tuple[int, int],
) -> np.ndarray:
    rate = noise.error_rate * rng.gamma(noise.error_burstiness, 1 / noise.error_burstiness, shape)
    errors: np.ndarray = rng.binomial(requests, np.clip(rate + increase, 0.0, 1.0))
    return errors


def simulate_guardrails(
    guardrails: Guardrails,
    noise: LatencyNoise,
    requests_per_hour: tuple[int, int],
    hours: int,
    n_experiments: int,
    seed: int,
    slowdown: float = 1.0,
    error_increase: float = 0.0,
) -> GuardrailOutcomes:
    """Run ``n_experiments`` experiments, the guardrails judged at each of ``hours`` looks.

    Args:
        guardrails: The settings judged (``min_requests``, the limits, ``confidence``).
        noise: Latency and 5xx noise of both arms.
        requests_per_hour: (champion, challenger) requests per hour.
        hours: Hourly looks at the figures accumulated since the start.
        n_experiments: Simulated experiments.
        seed: Seed of the random generator.
        slowdown: The challenger's true latency factor (every request).
        error_increase: The challenger's true 5xx rate minus the champion's.
    """
    rng = np.random.default_rng(seed)
    shape = (n_experiments, hours)
    machine = rng.lognormal(0.0, noise.machine_load_sd, shape)
    scales = (
        machine * rng.lognormal(0.0, noise.arm_load_sd, shape),
        machine * rng.lognormal(0.0, noise.arm_load_sd, shape) * slowdown,
    )
    champion_n, challenger_n = (
        np.arange(1, hours + 1) * requests for requests in requests_per_hour
    )
    champion, challenger = (
        _hourly_buckets(rng, noise, requests, scale).cumsum(axis=1).cumsum(axis=-1)[..., :-1]
        for requests, scale in zip(requests_per_hour, scales, strict=True)
    )
    champion_errors, challenger_errors = (
        _hourly_errors(rng, noise, requests, increase, shape).cumsum(axis=1)
        for requests, increase in zip(requests_per_hour, (0.0, error_increase), strict=True)
    )
    enough = np.minimum(champion_n, challenger_n) >= guardrails.min_requests
    evidence = p95_evidence(
        BENTOML_BUCKETS_MS,
        champion,
        champion_n,
        challenger,
        challenger_n,
        guardrails.max_p95_latency_ratio,
        guardrails.confidence,
    )
    latency = enough & (evidence.p_value <= (1 - guardrails.confidence) / 2)
    bound = error_increase_lower_bound(
        champion_errors, champion_n, challenger_errors, challenger_n, guardrails.confidence
    )
    errors = enough & (bound > guardrails.max_error_rate_increase)
    either = latency | errors
    first = either.argmax(axis=1)[either.any(axis=1)] + 1
    # The rule this replaces: p95 as histogram_quantile interpolates it, error rates as such.
    p95 = [
        np.minimum(value_at_rank(BENTOML_BUCKETS_MS, cum, n, QUANTILE * n), BENTOML_BUCKETS_MS[-1])
        for cum, n in ((champion, champion_n), (challenger, challenger_n))
    ]
    point_latency = enough & (p95[1] > guardrails.max_p95_latency_ratio * p95[0])
    increase = challenger_errors / challenger_n - champion_errors / champion_n
    point_errors = enough & (increase > guardrails.max_error_rate_increase)
    return GuardrailOutcomes(
        latency=float(latency.any(axis=1).mean()),
        errors=float(errors.any(axis=1).mean()),
        either=float(either.any(axis=1).mean()),
        median_hours_to_rollback=float(np.median(first)) if first.size else None,
        point_latency=float(point_latency.any(axis=1).mean()),
        point_errors=float(point_errors.any(axis=1).mean()),
    )


def print_accuracy_table(experiment: Experiment, args: argparse.Namespace) -> None:
    """The mSPRT's false promotions and power (docs/ab-testing.md, "Measured error rates")."""
    print(
        f"{args.experiments} experiments, {int(experiment.max_duration_hours)} hourly looks, "
        f"{args.labelled_per_hour} labelled predictions/hour, challenger share "
        f"{experiment.challenger_weight}%, accuracy {args.accuracy}, "
        f"alpha {experiment.significance_level}, min {experiment.min_samples_per_arm}/arm"
    )
    columns = ("true lift", "promoted (mSPRT)", "median hours to promote", "z-test peeked hourly")
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|")
    for lift in (0.0, 0.01, 0.02, 0.03, -0.02):
        outcome = simulate(
            experiment, args.accuracy, lift, args.labelled_per_hour, args.experiments, args.seed
        )
        hours = (
            "—"
            if outcome.median_hours_to_promote is None
            else f"{outcome.median_hours_to_promote:.0f}"
        )
        print(f"| {lift:+.2f} | {outcome.promote:.3f} | {hours} | {outcome.peeking_promote:.3f} |")


GUARDRAIL_CASES = (
    ("A/A", 1.0, 0.0),
    ("latency x1.25", 1.25, 0.0),
    ("latency x1.5", 1.5, 0.0),
    ("latency x2", 2.0, 0.0),
    ("latency x3", 3.0, 0.0),
    ("5xx +1 point", 1.0, 0.01),
    ("5xx +2 points", 1.0, 0.02),
    ("5xx +3 points", 1.0, 0.03),
)


def print_guardrail_tables(experiment: Experiment, args: argparse.Namespace) -> None:
    """The guardrails' false rollbacks and power: production traffic, and one CI-sized look."""
    guardrails = experiment.guardrails
    if args.min_requests is not None:
        guardrails = guardrails.model_copy(update={"min_requests": args.min_requests})
    challenger = round(args.requests_per_hour * experiment.challenger_weight / 100)
    production = (
        "production (hourly looks)",
        guardrails,
        (args.requests_per_hour - challenger, challenger),
        int(experiment.max_duration_hours),
    )
    # tests/integration/test_deploy.py: 50/50, ~300 requests per arm, min_requests 50, one look.
    ci = (
        "one look at 300 + 300 requests",
        guardrails.model_copy(update={"min_requests": 50}),
        (300, 300),
        1,
    )
    columns = (
        "challenger",
        "noise",
        "latency guardrail",
        "5xx guardrail",
        "either",
        "median hours to rollback",
        "point p95 ratio",
        "point 5xx increase",
    )
    for title, settings, requests, hours in (production, ci):
        print(
            f"\n{title}: {args.experiments} experiments, {requests[0]} + {requests[1]} requests "
            f"per hour, {hours} look(s), min_requests {settings.min_requests}, "
            f"max p95 ratio {settings.max_p95_latency_ratio}, max 5xx increase "
            f"{settings.max_error_rate_increase}, confidence {settings.confidence}"
        )
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for name, slowdown, increase in GUARDRAIL_CASES:
            for label, noise in (("noisy", LatencyNoise()), ("bursty", BURSTY)):
                outcome = simulate_guardrails(
                    settings,
                    noise,
                    requests,
                    hours,
                    args.experiments,
                    args.seed,
                    slowdown,
                    increase,
                )
                median = outcome.median_hours_to_rollback
                print(
                    f"| {name} | {label} | {outcome.latency:.3f} | {outcome.errors:.3f} "
                    f"| {outcome.either:.3f} | {'—' if median is None else f'{median:.0f}'} "
                    f"| {outcome.point_latency:.3f} | {outcome.point_errors:.3f} |"
                )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the A/A and power tables."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.ab_simulation", description=__doc__
    )
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--accuracy", type=float, default=0.86)
    parser.add_argument("--labelled-per-hour", type=int, default=1000)
    parser.add_argument("--requests-per-hour", type=int, default=2000)
    parser.add_argument(
        "--min-requests", type=int, default=None, help="guardrails.min_requests in production"
    )
    parser.add_argument("--table", choices=("all", "accuracy", "guardrails"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    experiment = Experiment()  # the defaults of bentos/deployments/production.yaml
    if args.table in ("all", "accuracy"):
        print_accuracy_table(experiment, args)
    if args.table in ("all", "guardrails"):
        print_guardrail_tables(experiment, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
