"""THE A/B rule: from each variant's figures to promote, rollback or continue (pure).

1. **guardrails** — with at least ``guardrails.min_requests`` per arm, a challenger is rolled
   back when, at the one-sided ``guardrails.confidence``, its error rate exceeds the
   champion's by more than ``max_error_rate_increase`` (a lower confidence bound of the
   difference, :func:`error_increase_lower_bound`), or its p95 latency exceeds
   ``max_p95_latency_ratio`` x the champion's (a binomial test on the latency histograms,
   :func:`p95_evidence`). Two point estimates are not enough: identical models on a busy
   machine differ in p95 by x1.7 on a few hundred requests;
2. **no verdict on thin data** — fewer than ``min_samples_per_arm`` labelled predictions
   in either arm: ``continue`` (a rollback once ``max_duration_hours`` have passed);
3. **the primary metric** (accuracy) with a mixture sequential probability ratio test
   (mSPRT, normal approximation, mixing N(0, mixture_sd²) over the difference): the test
   stays valid however often it is evaluated — the hourly schedule may peek — and promotes
   a challenger that is no better with probability at most ``significance_level``
   (docs/ab-testing.md measures it). Significant and better: ``promote``; significant and
   worse: ``rollback``; undecided at ``max_duration_hours``: ``rollback`` (the champion stays).

The figures come from Prometheus (:mod:`scripts.cd.prometheus`); the state edits that apply
a decision are :func:`scripts.cd.state.promoted` and :func:`scripts.cd.state.rolled_back`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from scripts.cd.state import DeploymentState, Experiment, promoted, rolled_back

Outcome = Literal["promote", "rollback", "continue"]


QUANTILE = 0.95  # the latency guardrail is about the p95


@dataclass(frozen=True)
class LatencyHistogram:
    """A variant's /predict durations as Prometheus buckets them, counted since the start.

    ``cumulative[i]`` requests took at most ``bounds_ms[i]``; ``count`` is every request
    (the ``+Inf`` bucket), so ``count - cumulative[-1]`` were slower than the last bound.
    """

    bounds_ms: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int

    def quantile(self, q: float) -> float | None:
        """The q-quantile as Prometheus's ``histogram_quantile`` interpolates it (None: empty)."""
        if self.count == 0 or not self.bounds_ms:
            return None
        value = float(value_at_rank(self.bounds_ms, self.cumulative, self.count, q * self.count))
        # histogram_quantile answers the last finite bound for the +Inf bucket.
        return min(value, self.bounds_ms[-1])


@dataclass(frozen=True)
class Figures:
    """One variant's figures since the experiment started."""

    requests: int
    errors: int
    feedback: int
    correct: int
    p95_ms: float | None
    # What the p95 guardrail tests; None: not measured, the guardrail cannot judge.
    latency: LatencyHistogram | None = None

    @property
    def error_rate(self) -> float:
        """5xx share of /predict calls."""
        total = self.requests
        return self.errors / total if total else 0.0

    @property
    def accuracy(self) -> float | None:
        """Share of labelled predictions that were right."""
        return self.correct / self.feedback if self.feedback else None


@dataclass(frozen=True)
class Decision:
    """The outcome and the numbers that led to it."""

    outcome: Outcome
    reason: str
    champion: Figures
    challenger: Figures
    hours: float
    statistic: float | None = None
    threshold: float | None = None


def msprt_log_lr(
    correct_a: ArrayLike, n_a: ArrayLike, correct_b: ArrayLike, n_b: ArrayLike, mixture_sd: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log mixture likelihood ratio of "the accuracies differ", and the observed difference.

    Normal approximation of the difference of proportions b - a, pooled variance under the
    null, mixing distribution N(0, mixture_sd²) over the difference (Johari et al., "Always
    valid inference", 2017). Works element-wise on arrays (docs/ab-testing.md simulates
    thousands of experiments with it).

    Returns:
        (log Λ, difference b - a).
    """
    ca, na, cb, nb = (np.asarray(x, dtype=np.float64) for x in (correct_a, n_a, correct_b, n_b))
    pooled = (ca + cb) / (na + nb)
    variance = np.maximum(pooled * (1 - pooled) * (1 / na + 1 / nb), 1e-12)
    tau2 = mixture_sd**2
    difference = cb / nb - ca / na
    log_lr = 0.5 * np.log(variance / (variance + tau2)) + tau2 * difference**2 / (
        2 * variance * (variance + tau2)
    )
    return log_lr, difference


def error_increase_lower_bound(
    errors_a: ArrayLike, n_a: ArrayLike, errors_b: ArrayLike, n_b: ArrayLike, confidence: float
) -> np.ndarray:
    """One-sided lower confidence bound of the error-rate difference b - a.

    Newcombe's hybrid score interval (method 10 of Newcombe, *Interval estimation for the
    difference between independent proportions*, Stat. Med. 1998), from each arm's Wilson
    score bound: it keeps its coverage with few or zero errors, where the Wald interval
    does not. ``confidence`` is one-sided. Works element-wise on arrays.
    """
    ea, na, eb, nb = (np.asarray(x, dtype=np.float64) for x in (errors_a, n_a, errors_b, n_b))
    z = float(stats.norm.ppf(confidence))

    def wilson(errors: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rate = errors / n
        centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
        return rate, centre - half, centre + half

    rate_a, _, upper_a = wilson(ea, na)
    rate_b, lower_b, _ = wilson(eb, nb)
    result: np.ndarray = (rate_b - rate_a) - np.sqrt(
        (rate_b - lower_b) ** 2 + (upper_a - rate_a) ** 2
    )
    return result


def _buckets(
    bounds_ms: ArrayLike, cumulative: ArrayLike, count: ArrayLike, position: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounds with 0 and inf added; cumulative counts with 0 and ``count``; all broadcast."""
    bounds = np.concatenate(([0.0], np.asarray(bounds_ms, dtype=np.float64), [np.inf]))
    cum = np.asarray(cumulative, dtype=np.float64)
    total = np.asarray(count, dtype=np.float64)
    where = np.asarray(position, dtype=np.float64)
    shape = np.broadcast_shapes(cum.shape[:-1], total.shape, where.shape)
    total = np.broadcast_to(total, shape)
    padded = np.concatenate(
        (np.zeros((*shape, 1)), np.broadcast_to(cum, (*shape, cum.shape[-1])), total[..., None]),
        axis=-1,
    )
    return bounds, padded, total, np.broadcast_to(where, shape)


def _within(
    bounds: np.ndarray, padded: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bounds and cumulative counts of bucket ``index`` (1-based: (bounds[i-1], bounds[i]])."""
    lower, upper = bounds[index - 1], bounds[index]
    lower_count = np.take_along_axis(padded, (index - 1)[..., None], axis=-1)[..., 0]
    upper_count = np.take_along_axis(padded, index[..., None], axis=-1)[..., 0]
    return lower, upper, lower_count, upper_count


def value_at_rank(
    bounds_ms: ArrayLike,
    cumulative: ArrayLike,
    count: ArrayLike,
    rank: ArrayLike,
    geometric: bool = False,
) -> np.ndarray:
    """The ``rank``-th fastest duration, interpolated within its bucket.

    Linearly, as Prometheus's ``histogram_quantile`` does (the first bucket starts at 0);
    ``geometric``: linearly in log-latency, except in the first bucket (see
    :func:`p95_evidence`). A rank in the ``+Inf`` bucket, or past ``count``, is ``inf``.
    ``cumulative`` has the buckets on its last axis; the other arguments broadcast.
    """
    bounds, padded, total, wanted = _buckets(bounds_ms, cumulative, count, rank)
    # Buckets holding fewer than `rank` requests lie below the wanted one.
    index = (padded[..., 1:-1] < wanted[..., None]).sum(axis=-1) + 1
    lower, upper, lower_count, upper_count = _within(bounds, padded, index)
    finite = np.isfinite(upper) & (wanted <= total)
    share = (wanted - lower_count) / np.maximum(upper_count - lower_count, 1.0)
    upper = np.where(finite, upper, lower)
    if geometric:
        log_scale = lower > 0
        ratio = np.where(log_scale, upper / np.where(log_scale, lower, 1.0), 1.0)
        value = np.where(log_scale, lower * ratio**share, upper * share)
    else:
        value = lower + (upper - lower) * share
    return np.where(finite, value, np.inf)


def slower_than(
    bounds_ms: ArrayLike,
    cumulative: ArrayLike,
    count: ArrayLike,
    threshold_ms: ArrayLike,
    geometric: bool = False,
) -> np.ndarray:
    """How many requests took longer than ``threshold_ms`` (interpolated within a bucket).

    Interpolated as :func:`value_at_rank` does; rounded down, and none past the last finite
    bound (where the histogram cannot tell): both in the direction of no rollback.
    """
    bounds, padded, total, threshold = _buckets(bounds_ms, cumulative, count, threshold_ms)
    # The bucket (lower, upper] the threshold falls in.
    index = np.clip(np.searchsorted(bounds, threshold, side="left"), 1, len(bounds) - 1)
    lower, upper, lower_count, upper_count = _within(bounds, padded, index)
    finite = np.isfinite(upper)
    upper = np.where(finite, upper, lower + 1.0)
    if geometric:
        log_scale = lower > 0
        safe_lower = np.where(log_scale, lower, 1.0)
        fraction = np.where(
            log_scale,
            np.log(np.maximum(threshold, safe_lower) / safe_lower) / np.log(upper / safe_lower),
            threshold / upper,
        )
    else:
        fraction = (threshold - lower) / (upper - lower)
    at_most = np.where(finite, lower_count + (upper_count - lower_count) * fraction, total)
    slower: np.ndarray = np.floor(np.maximum(total - at_most, 0.0) + 1e-9)
    return slower


class P95Evidence(NamedTuple):
    """The p95 guardrail's numbers (arrays, or 0-d arrays for one experiment)."""

    champion_p95_upper_ms: np.ndarray
    threshold_ms: np.ndarray
    slower: np.ndarray
    p_value: np.ndarray


def p95_evidence(
    bounds_ms: ArrayLike,
    champion_cumulative: ArrayLike,
    champion_count: ArrayLike,
    challenger_cumulative: ArrayLike,
    challenger_count: ArrayLike,
    max_ratio: float,
    confidence: float,
) -> P95Evidence:
    """Is the challenger's p95 above ``max_ratio`` x the champion's? A test on two histograms.

    Under "no breach" (challenger p95 <= max_ratio x champion p95), at most 5 % of the
    challenger's requests are slower than ``max_ratio`` x any upper bound of the champion's
    p95. So: an upper confidence bound of the champion's p95 (the order statistic whose rank
    a Binomial(n, 0.95) stays below with probability 1 - alpha/2: distribution-free), then a
    one-sided binomial test of the challenger's requests slower than ``max_ratio`` x that
    bound against 5 %. A p-value <= alpha/2 (alpha = 1 - ``confidence``) is a breach; the
    chance of a false one is at most alpha (Bonferroni over the two steps), up to the
    interpolation within buckets. Works element-wise on arrays (histograms on the last axis).
    """
    half_alpha = (1 - confidence) / 2
    champion_n = np.asarray(champion_count, dtype=np.float64)
    challenger_n = np.asarray(challenger_count, dtype=np.float64)
    rank = stats.binom.ppf(1 - half_alpha, champion_n, QUANTILE) + 1
    upper = value_at_rank(bounds_ms, champion_cumulative, champion_n, rank, geometric=True)
    threshold = max_ratio * upper
    slower = slower_than(bounds_ms, challenger_cumulative, challenger_n, threshold, geometric=True)
    p_value = stats.binom.sf(slower - 1, challenger_n, 1 - QUANTILE)
    return P95Evidence(upper, threshold, slower, np.asarray(p_value, dtype=np.float64))


def decide(
    champion: Figures, challenger: Figures, experiment: Experiment, hours: float
) -> Decision:
    """Guardrails, then enough data, then the sequential test (see the module docstring)."""
    guard = experiment.guardrails

    def decision(outcome: Outcome, reason: str, **extra: float | None) -> Decision:
        return Decision(outcome, reason, champion, challenger, round(hours, 3), **extra)

    if min(champion.requests, challenger.requests) >= guard.min_requests:
        breach = guardrail_breach(champion, challenger, experiment)
        if breach is not None:
            return decision("rollback", f"guardrail: {breach}")
    expired = hours >= experiment.max_duration_hours
    least = min(champion.feedback, challenger.feedback)
    if least < experiment.min_samples_per_arm:
        reason = (
            f"insufficient data: {challenger.feedback} labelled predictions for the challenger, "
            f"{champion.feedback} for the champion (need {experiment.min_samples_per_arm} each)"
        )
        if expired:
            return decision("rollback", f"{reason} after {hours:.1f} h: the champion stays")
        return decision("continue", reason)
    log_lr_array, difference_array = msprt_log_lr(
        champion.correct,
        champion.feedback,
        challenger.correct,
        challenger.feedback,
        experiment.mixture_sd,
    )
    log_lr, difference = float(log_lr_array), float(difference_array)
    threshold = math.log(1 / experiment.significance_level)
    numbers = (
        f"accuracy challenger {challenger.accuracy:.4f} (n={challenger.feedback}) vs champion "
        f"{champion.accuracy:.4f} (n={champion.feedback}), difference {difference:+.4f}; "
        f"mSPRT log LR {log_lr:.2f} vs log(1/alpha) {threshold:.2f}"
    )
    stats = {"statistic": round(log_lr, 4), "threshold": round(threshold, 4)}
    if log_lr >= threshold:
        outcome: Outcome = "promote" if difference > 0 else "rollback"
        return decision(outcome, f"significant: {numbers}", **stats)
    if expired:
        return decision(
            "rollback", f"no significant difference after {hours:.1f} h: {numbers}", **stats
        )
    return decision("continue", f"not significant yet: {numbers}", **stats)


def guardrail_breach(champion: Figures, challenger: Figures, experiment: Experiment) -> str | None:
    """Why the challenger breaks a guardrail at the configured confidence, or None."""
    guard = experiment.guardrails
    increase_bound = float(
        error_increase_lower_bound(
            champion.errors,
            max(champion.requests, 1),
            challenger.errors,
            max(challenger.requests, 1),
            guard.confidence,
        )
    )
    if increase_bound > guard.max_error_rate_increase:
        return (
            f"challenger error rate {challenger.error_rate:.4f} vs champion "
            f"{champion.error_rate:.4f}: the increase is at least {increase_bound:+.4f} "
            f"at {guard.confidence:.0%} confidence (> {guard.max_error_rate_increase})"
        )
    slow, fast = challenger.latency, champion.latency
    if slow is None or fast is None or not fast.bounds_ms or slow.bounds_ms != fast.bounds_ms:
        return None
    evidence = p95_evidence(
        fast.bounds_ms,
        fast.cumulative,
        fast.count,
        slow.cumulative,
        slow.count,
        guard.max_p95_latency_ratio,
        guard.confidence,
    )
    p_value = float(evidence.p_value)
    if p_value > (1 - guard.confidence) / 2:
        return None
    return (
        f"challenger p95 {challenger.p95_ms} ms vs champion {champion.p95_ms} ms: "
        f"{int(evidence.slower)} of {slow.count} challenger requests "
        f"({float(evidence.slower) / slow.count:.1%}) took longer than "
        f"x{guard.max_p95_latency_ratio} the champion's p95 upper bound "
        f"{float(evidence.champion_p95_upper_ms):.1f} ms "
        f"(binomial test against 5 %: p = {p_value:.2g})"
    )


EMPTY = Figures(0, 0, 0, 0, None)


def decide_experiment(
    state: DeploymentState, measured: dict[str, Figures], hours: float
) -> Decision:
    """The decision for the experiment ``state`` describes, from each variant's figures."""
    return decide(
        measured.get("champion", EMPTY),
        measured.get("challenger", EMPTY),
        state.experiment,
        hours,
    )


def applied(state: DeploymentState, decision: Decision) -> DeploymentState:
    """The state once the decision is carried out (unchanged for ``continue``)."""
    if decision.outcome == "promote":
        return promoted(state)
    if decision.outcome == "rollback":
        return rolled_back(state)
    return state


def report(state: DeploymentState, decision: Decision) -> dict[str, Any]:
    """The decision with the Bentos it is about (``reports/promotion.json``)."""
    champion, challenger = state.champion, state.challenger
    if champion is None or challenger is None:
        raise ValueError(f"{state.environment}: no experiment to report on")
    return {
        "environment": state.environment,
        "champion_bento": champion.bento,
        "challenger_bento": challenger.bento,
        **asdict(decision),
    }


def render_body(report: dict[str, Any]) -> str:
    """The PR body: outcome, reason and the figures of both arms."""
    lines = [
        f"## A/B decision: {str(report['outcome']).upper()}",
        "",
        str(report["reason"]),
        "",
        "| variant | bento | requests | errors | p95 ms | labelled | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for role in ("champion", "challenger"):
        numbers = report[role]
        lines.append(
            f"| {role} | {report[f'{role}_bento']} | {numbers['requests']} | {numbers['errors']} "
            f"| {numbers['p95_ms']} | {numbers['feedback']} | {numbers['correct']} |"
        )
    return "\n".join(lines) + "\n"
