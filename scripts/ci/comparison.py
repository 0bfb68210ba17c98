"""The candidate against the reference model on the SAME rows, with its uncertainty.

Both models score the same test rows; the difference of a metric (candidate - reference)
gets a paired bootstrap interval (``scipy.stats.bootstrap`` with ``paired=True``, BCa): each
resample draws rows with replacement and scores both models on the same draw, so what the
rows have in common cancels and only the models' difference varies. A metric's gate fails
when the interval lies entirely below 0 (a significant drop at ``confidence``) AND the
observed drop is larger than its tolerance. docs/gates.md explains the choice and
measures the false-failure rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.params import RegressionParams

LOWER_IS_BETTER = {"log_loss"}
BATCH = 250  # resamples scored at once: bounds memory to BATCH x rows per array


def _roc_auc(labels: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis (Mann-Whitney U from average ranks)."""
    from scipy.stats import rankdata

    ranks = rankdata(probability, axis=-1)
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    u = (ranks * labels).sum(axis=-1) - positives * (positives + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(u / (positives * negatives))


def _confusion(
    labels: np.ndarray, probability: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    predicted = probability >= threshold
    truth = labels == 1
    return (
        (predicted & truth).sum(axis=-1),
        (predicted & ~truth).sum(axis=-1),
        (~predicted & truth).sum(axis=-1),
        (~predicted & ~truth).sum(axis=-1),
    )


def metric_function(name: str, threshold: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A metric computed along the last axis, so thousands of resamples score at once."""

    def thresholded(
        formula: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def score(labels: np.ndarray, probability: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                return formula(*_confusion(labels, probability, threshold))

        return score

    def log_loss(labels: np.ndarray, probability: np.ndarray) -> np.ndarray:
        p = np.clip(probability, 1e-15, 1 - 1e-15)
        return np.asarray(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(axis=-1))

    functions: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "roc_auc": _roc_auc,
        "log_loss": log_loss,
        "accuracy": thresholded(lambda tp, fp, fn, tn: (tp + tn) / (tp + fp + fn + tn)),
        "precision": thresholded(lambda tp, fp, fn, tn: tp / (tp + fp)),
        "recall": thresholded(lambda tp, fp, fn, tn: tp / (tp + fn)),
        "f1": thresholded(lambda tp, fp, fn, tn: 2 * tp / (2 * tp + fp + fn)),
    }
    if name not in functions:
        raise ValueError(f"metric {name!r}: expected one of {', '.join(sorted(functions))}")
    return functions[name]


@dataclass(frozen=True)
class Comparison:
    """One metric of both models on the same rows, and the verdict on their difference."""

    metric: str
    rows: int
    reference: float
    candidate: float
    difference: float
    low: float
    high: float
    confidence: float
    tolerance: float
    passed: bool
    verdict: str

    @property
    def drop(self) -> float:
        """How much worse the candidate is (negative: better), whichever way the metric runs."""
        return self.difference if self.metric in LOWER_IS_BETTER else -self.difference

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def compare(
    labels: np.ndarray,
    reference: np.ndarray,
    candidate: np.ndarray,
    metric: str,
    tolerance: float,
    cfg: RegressionParams,
    threshold: float,
) -> Comparison:
    """Compare the two models' ``metric`` on the same rows (see the module docstring).

    Args:
        labels: True labels 0/1 of the rows.
        reference: The reference model's probabilities on those rows.
        candidate: The candidate model's probabilities on the same rows, same order.
        metric: A name of :func:`metric_function`.
        tolerance: Largest drop (log_loss: rise) the gate accepts.
        cfg: ``gates.regression`` (confidence, resamples, seed).
        threshold: Decision threshold of the thresholded metrics.
    """
    from scipy.stats import DegenerateDataWarning, bootstrap

    score = metric_function(metric, threshold)
    y = np.asarray(labels, dtype=np.int64)
    ref, new = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)

    def difference(y: np.ndarray, ref: np.ndarray, new: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(score(y, new) - score(y, ref))

    observed = float(difference(y, ref, new))
    low = high = observed
    if not np.array_equal(ref, new):  # identical predictions differ by 0 in every resample
        with warnings.catch_warnings():
            # A degenerate resample distribution (e.g. a handful of rows) makes BCa warn
            # and return NaN; the interval then collapses to the observed difference.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", DegenerateDataWarning)
            result = bootstrap(
                (y, ref, new),
                difference,
                paired=True,
                vectorized=True,
                n_resamples=cfg.resamples,
                batch=BATCH,
                confidence_level=cfg.confidence,
                method="BCa",
                random_state=np.random.default_rng(cfg.seed),
            )
        interval = result.confidence_interval
        if not (np.isnan(interval.low) or np.isnan(interval.high)):
            low, high = float(interval.low), float(interval.high)
    # Oriented so that a positive "drop" is always worse.
    lower_is_better = metric in LOWER_IS_BETTER
    drop = observed if lower_is_better else -observed
    worse = low > 0 if lower_is_better else high < 0
    better = high < 0 if lower_is_better else low > 0
    passed = not (worse and drop > tolerance)
    level = f"{cfg.confidence:.0%}"
    if not passed:
        verdict = (
            f"significant drop of {drop:.4f} at {level}, beyond the tolerance {tolerance}: fail"
        )
    elif worse:
        verdict = f"significant drop of {drop:.4f}, within the tolerance {tolerance}: pass"
    elif better:
        verdict = f"significantly better at {level}: pass"
    else:
        verdict = f"no significant difference at {level} (interval includes 0): pass"
    return Comparison(
        metric=metric,
        rows=len(y),
        reference=round(float(score(y, ref)), 6),
        candidate=round(float(score(y, new)), 6),
        difference=round(observed, 6),
        low=round(low, 6),
        high=round(high, 6),
        confidence=cfg.confidence,
        tolerance=tolerance,
        passed=passed,
        verdict=verdict,
    )
