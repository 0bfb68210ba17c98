"""THE A/B rule: from each variant's figures to promote, rollback or continue (pure).

1. **guardrails** — with at least ``guardrails.min_requests`` per arm, a challenger whose
   error rate exceeds the champion's by more than ``max_error_rate_increase``, or whose p95
   latency exceeds ``max_p95_latency_ratio`` x the champion's, is rolled back;
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
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from scripts.cd.state import DeploymentState, Experiment, promoted, rolled_back

Outcome = Literal["promote", "rollback", "continue"]


@dataclass(frozen=True)
class Figures:
    """One variant's figures since the experiment started."""

    requests: int
    errors: int
    feedback: int
    correct: int
    p95_ms: float | None

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


def decide(
    champion: Figures, challenger: Figures, experiment: Experiment, hours: float
) -> Decision:
    """Guardrails, then enough data, then the sequential test (see the module docstring)."""
    guard = experiment.guardrails

    def decision(outcome: Outcome, reason: str, **extra: float | None) -> Decision:
        return Decision(outcome, reason, champion, challenger, round(hours, 3), **extra)

    if min(champion.requests, challenger.requests) >= guard.min_requests:
        increase = challenger.error_rate - champion.error_rate
        if increase > guard.max_error_rate_increase:
            return decision(
                "rollback",
                f"guardrail: challenger error rate {challenger.error_rate:.4f} vs champion "
                f"{champion.error_rate:.4f} (+{increase:.4f} > {guard.max_error_rate_increase})",
            )
        if champion.p95_ms and challenger.p95_ms:
            ratio = challenger.p95_ms / champion.p95_ms
            if ratio > guard.max_p95_latency_ratio:
                return decision(
                    "rollback",
                    f"guardrail: challenger p95 {challenger.p95_ms:.1f} ms vs champion "
                    f"{champion.p95_ms:.1f} ms (x{ratio:.2f} > x{guard.max_p95_latency_ratio})",
                )
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
