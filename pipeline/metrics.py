"""Classification metrics and curve data: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

DIGITS = 6


@dataclass(frozen=True)
class Scores:
    """The metrics reported for a model (and its baseline), rounded to :data:`DIGITS`."""

    accuracy: float
    f1: float
    roc_auc: float
    log_loss: float
    precision: float
    recall: float

    def to_json(self) -> dict[str, float]:
        """The scores as a dict."""
        return asdict(self)


def score(labels: np.ndarray, probability: np.ndarray, threshold: float) -> Scores:
    """Score probabilities of the positive class.

    Args:
        labels: True labels 0/1.
        probability: Predicted probability of 1.
        threshold: Probability at or above which 1 is predicted.

    Returns:
        The scores. Precision is 0 when nothing is predicted positive; ROC AUC is 0.5
        when the probabilities do not vary (a constant baseline).
    """
    predicted = (probability >= threshold).astype(np.int64)
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    auc = 0.5 if np.ptp(probability) == 0 else roc_auc_score(labels, probability)
    values = {
        "accuracy": accuracy_score(labels, predicted),
        "f1": f1_score(labels, predicted, zero_division=0),
        "roc_auc": auc,
        "log_loss": log_loss(labels, clipped, labels=[0, 1]),
        "precision": precision_score(labels, predicted, zero_division=0),
        "recall": recall_score(labels, predicted, zero_division=0),
    }
    return Scores(**{name: round(float(value), DIGITS) for name, value in values.items()})


def baseline_probability(train_labels: np.ndarray, n_rows: int) -> np.ndarray:
    """The trivial baseline: every row gets the training default rate.

    Args:
        train_labels: Labels of the training split.
        n_rows: How many rows to score.

    Returns:
        A constant probability per row.
    """
    return np.full(n_rows, float(np.mean(train_labels)))


def roc_points(labels: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    """ROC curve as columns fpr, tpr, threshold."""
    fpr, tpr, thresholds = roc_curve(labels, probability)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}).round(
        DIGITS
    )


def pr_points(labels: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    """Precision-recall curve as columns recall, precision, threshold."""
    precision, recall, thresholds = precision_recall_curve(labels, probability)
    # The last point (recall 0, precision 1) has no threshold.
    return pd.DataFrame(
        {"recall": recall[:-1], "precision": precision[:-1], "threshold": thresholds}
    ).round(DIGITS)
