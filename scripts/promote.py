"""The A/B decision: ``python -m scripts.promote --env production`` (``make promote``).

Reads each variant's figures since the experiment started from Prometheus (PromQL over the
service's own series): requests and 5xx errors of ``/predict``, its p95 latency, and the
labelled feedback (``credit_risk_feedback_total`` / ``_correct_total``) for accuracy. Then:

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

The outcome and the numbers behind it are printed and written to ``reports/promotion.json``.
``--write`` edits the state file (promote: the challenger becomes the only variant;
rollback: the challenger is removed); ``--propose`` also commits it as a PR (or a push to
main) through :mod:`scripts.gitops`. Exit 0 when a decision (or ``continue``) was reached,
3 when it could not be evaluated (Prometheus unreachable: ``continue``, and an alert).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from scripts.deploy_state import (
    STATE_DIR,
    Experiment,
    StateError,
    load_state,
    promoted,
    rolled_back,
    save_state,
    state_path,
)

Outcome = Literal["promote", "rollback", "continue"]
UNEVALUATED = 3
QUERIES = {
    "requests": 'sum by (variant) (bentoml_service_request_total{endpoint="/predict"})',
    "errors": (
        'sum by (variant) (bentoml_service_request_total{endpoint="/predict",'
        'http_response_code=~"5.."})'
    ),
    "feedback": "sum by (variant) (credit_risk_feedback_total)",
    "correct": "sum by (variant) (credit_risk_feedback_correct_total)",
}
P95 = (
    "histogram_quantile(0.95, sum by (variant, le) "
    '(increase(bentoml_service_request_duration_seconds_bucket{{endpoint="/predict"}}[{range}s])))'
)


class PrometheusError(RuntimeError):
    """Prometheus could not be queried; the message says which query and why."""


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


def query(base_url: str, promql: str, at: float) -> dict[str, float]:
    """Instant query; ``{variant: value}``.

    Raises:
        PrometheusError: Unreachable, or an error answer.
    """
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": f"{at:.3f}"}
    )
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as error:
        raise PrometheusError(f"{base_url} unreachable for {promql!r}: {error}") from error
    if document.get("status") != "success":
        raise PrometheusError(f"{promql!r}: {document.get('error', document)}")
    values = {}
    for sample in document["data"]["result"]:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[sample["metric"].get("variant", "")] = value
    return values


def figures(base_url: str, since: float, now: float) -> dict[str, Figures]:
    """Per-variant figures between ``since`` and ``now`` (counter differences, resets counted)."""
    counts: dict[str, dict[str, int]] = {}
    for name, promql in QUERIES.items():
        latest, earlier = query(base_url, promql, now), query(base_url, promql, since)
        for variant, value in latest.items():
            before = earlier.get(variant, 0.0)
            counts.setdefault(variant, {})[name] = round(
                value - before if value >= before else value
            )
    window = max(int(now - since), 30)
    p95 = query(base_url, P95.format(range=window), now)
    return {
        variant: Figures(
            requests=values.get("requests", 0),
            errors=values.get("errors", 0),
            feedback=values.get("feedback", 0),
            correct=values.get("correct", 0),
            p95_ms=round(p95[variant] * 1000, 3) if variant in p95 else None,
        )
        for variant, values in counts.items()
    }


EMPTY = Figures(0, 0, 0, 0, None)


def local_experiment(env: str) -> tuple[str | None, float | None]:
    """Prometheus URL and experiment start recorded by the local driver, if it runs ``env``."""
    from scripts.deploy import load_running

    running = load_running(env)
    if running is None:
        return None, None
    return running.prometheus_url, running.experiment_started


def main(argv: Sequence[str] | None = None) -> int:
    """Decide, print, write the report; optionally edit the state and propose it."""
    parser = argparse.ArgumentParser(prog="python -m scripts.promote", description=__doc__)
    parser.add_argument("--env", default="production")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL"))
    parser.add_argument("--since", type=float, default=None, help="experiment start (epoch s)")
    parser.add_argument("--out", type=Path, default=Path("reports/promotion.json"))
    parser.add_argument("--write", action="store_true", help="edit the state file")
    parser.add_argument("--propose", action="store_true", help="--write, then commit it as a PR")
    args = parser.parse_args(argv)
    path = state_path(args.env, args.state_dir)
    try:
        state = load_state(path)
    except StateError as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    if state.challenger is None or state.champion is None:
        print(f"promote: no experiment in {path}: nothing to decide")
        return 0
    local_url, local_since = local_experiment(args.env)
    base_url = (args.prometheus_url or local_url or "").rstrip("/")
    since = args.since or local_since
    now = time.time()
    try:
        if not base_url or since is None:
            raise PrometheusError(
                "no Prometheus URL or experiment start: pass --prometheus-url/--since or "
                "deploy with the local driver"
            )
        measured = figures(base_url, since, now)
    except PrometheusError as error:
        print(f"promote: continue — could not evaluate the experiment: {error}", file=sys.stderr)
        return UNEVALUATED
    decision = decide(
        measured.get("champion", EMPTY),
        measured.get("challenger", EMPTY),
        state.experiment,
        (now - since) / 3600,
    )
    report = {
        "environment": args.env,
        "champion_bento": state.champion.bento,
        "challenger_bento": state.challenger.bento,
        **asdict(decision),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"promote: {decision.outcome.upper()} — {decision.reason}")
    for role, numbers in (("champion", decision.champion), ("challenger", decision.challenger)):
        bento = report[f"{role}_bento"]
        print(f"  {role:<10} {bento}: {asdict(numbers)}")
    if decision.outcome == "continue" or not (args.write or args.propose):
        return 0
    updated = promoted(state) if decision.outcome == "promote" else rolled_back(state)
    save_state(updated, path)
    print(
        f"promote: {path} now serves " + ", ".join(f"{v.name}={v.bento}" for v in updated.variants)
    )
    if args.propose:
        from scripts.gitops import propose

        body = args.out.with_suffix(".md")
        body.write_text(render_body(report), encoding="utf-8")
        title = f"{decision.outcome}: {state.challenger.bento} in {args.env}"
        branch = f"gitops/{args.env}-{decision.outcome}-{state.challenger.bento.replace(':', '-')}"
        direct = os.environ.get("GITOPS_ML_STATE_PUSH") == "direct"
        print(f"promote: {propose([path], title, body, branch, direct)}")
    return 0


def render_body(report: Mapping[str, object]) -> str:
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
        assert isinstance(numbers, dict)
        lines.append(
            f"| {role} | {report[f'{role}_bento']} | {numbers['requests']} | {numbers['errors']} "
            f"| {numbers['p95_ms']} | {numbers['feedback']} | {numbers['correct']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
