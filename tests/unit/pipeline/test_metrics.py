import numpy as np
import pytest

from pipeline.evaluate import metrics_document
from pipeline.metrics import baseline_probability, pr_points, roc_points, score

LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 0])
PROBABILITY = np.array([0.1, 0.4, 0.8, 0.35, 0.2, 0.9, 0.6, 0.05])


def test_scores_match_hand_computed_values():
    scores = score(LABELS, PROBABILITY, threshold=0.5)
    # predicted 0 0 1 0 0 1 1 0: TP=2, FP=1, FN=1, TN=4
    assert scores.accuracy == 0.75
    assert scores.precision == pytest.approx(2 / 3, abs=1e-6)
    assert scores.recall == pytest.approx(2 / 3, abs=1e-6)
    assert scores.f1 == pytest.approx(2 / 3, abs=1e-6)
    assert scores.roc_auc == pytest.approx(13 / 15, abs=1e-6)


def test_baseline_has_no_skill_and_lift_is_the_difference():
    baseline = score(LABELS, baseline_probability(np.array([0, 1, 0, 0]), len(LABELS)), 0.5)
    assert baseline.roc_auc == 0.5
    assert baseline.f1 == 0.0
    assert baseline.accuracy == 5 / 8
    document = metrics_document(score(LABELS, PROBABILITY, 0.5), baseline, 8, 0.5)
    assert document["lift"]["roc_auc"] == pytest.approx(13 / 15 - 0.5, abs=1e-6)
    assert set(document) == {"model", "baseline", "lift", "n_test", "threshold"}


def test_curve_points_have_named_columns_and_end_points():
    roc = roc_points(LABELS, PROBABILITY)
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert (roc["fpr"].iloc[0], roc["tpr"].iloc[-1]) == (0.0, 1.0)
    pr = pr_points(LABELS, PROBABILITY)
    assert list(pr.columns) == ["recall", "precision", "threshold"]
    assert pr["recall"].iloc[0] == 1.0
