"""Metrics per group of rows (region, product type, an age band...): the fairness table.

The groups are ``evaluate.groups`` in params.yaml. fairlearn's ``MetricFrame`` computes
each metric per group; the model card shows the table and the fairness gate
(``scripts/ci/gates.py``) judges it against ``gates.fairness``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.metrics import DIGITS
from pipeline.params import GroupParams


@dataclass(frozen=True)
class GroupRow:
    """One group's metrics (None where undefined, e.g. ROC AUC with one class)."""

    column: str
    group: str
    rows: int
    roc_auc: float | None
    recall: float | None
    selection_rate: float | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)


def band_labels(values: pd.Series, edges: tuple[float, ...]) -> pd.Series:
    """Numeric values as band labels: edges (30, 45) give ``<30``, ``30-45``, ``>=45``."""
    names = [f"<{edges[0]:g}"]
    names += [f"{low:g}-{high:g}" for low, high in itertools.pairwise(edges)]
    names.append(f">={edges[-1]:g}")
    bins = [-math.inf, *edges, math.inf]
    return pd.cut(values, bins=bins, labels=names, right=False).astype(str)


def group_labels(frame: pd.DataFrame, column: str, cfg: GroupParams) -> pd.Series:
    """Each row's group in ``column``: its category, or its band for a numeric column."""
    if column in cfg.bands:
        return band_labels(frame[column], cfg.bands[column])
    return frame[column].astype(str)


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), DIGITS)


def group_metrics(
    frame: pd.DataFrame,
    labels: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    cfg: GroupParams,
) -> list[GroupRow]:
    """ROC AUC, recall and selection rate of every group of every column of ``cfg``.

    Args:
        frame: The scored rows (for their group columns).
        labels: True labels 0/1.
        probability: Predicted probability of the positive class.
        threshold: Decision threshold for recall and selection rate.
        cfg: ``evaluate.groups``.
    """
    from fairlearn.metrics import MetricFrame, selection_rate
    from sklearn.metrics import recall_score, roc_auc_score

    def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
        return float(roc_auc_score(y_true, y_score)) if len(set(y_true)) == 2 else math.nan

    def recall(y_true: np.ndarray, y_score: np.ndarray) -> float:
        if not np.any(y_true == 1):
            return math.nan
        return float(recall_score(y_true, (y_score >= threshold).astype(np.int64)))

    def selected(y_true: np.ndarray, y_score: np.ndarray) -> float:
        return float(selection_rate(y_true, (y_score >= threshold).astype(np.int64)))

    def count(y_true: np.ndarray, y_score: np.ndarray) -> float:
        return float(len(y_true))

    rows: list[GroupRow] = []
    for column in cfg.columns:
        by_group = MetricFrame(
            metrics={
                "rows": count,
                "roc_auc": roc_auc,
                "recall": recall,
                "selection_rate": selected,
            },
            y_true=np.asarray(labels),
            y_pred=np.asarray(probability),
            sensitive_features=group_labels(frame, column, cfg).to_numpy(),
        ).by_group
        for group, values in by_group.iterrows():
            rows.append(
                GroupRow(
                    column=column,
                    group=str(group),
                    rows=int(values["rows"]),
                    roc_auc=_defined(values["roc_auc"]),
                    recall=_defined(values["recall"]),
                    selection_rate=_defined(values["selection_rate"]),
                )
            )
    return rows
