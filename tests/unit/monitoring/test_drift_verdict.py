"""The drift job's verdict wording: dataset drift, features drifted and severe ones apart."""

from __future__ import annotations

from typing import Any

from monitoring.drift import Window, headline, prometheus_text, render_markdown, summarize
from tests.helpers import make_params

FEATURES = make_params().data.schema.features


def scores(**drifted: float) -> dict[str, dict[str, Any]]:
    """PSI scores: the named features at their score and drifted; the rest at 0.01."""
    return {
        column: {
            "score": drifted.get(column, 0.01),
            "method": "psi",
            "threshold": 0.2,
            "drifted": column in drifted,
        }
        for column in FEATURES
    }


def summary_of(column_scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    settings = make_params().monitoring
    window = Window(None, "2026-11-29", "2026-11-30")  # type: ignore[arg-type]  # no rows needed
    return summarize(window, column_scores, None, settings, 900, 900)


def test_a_severe_feature_below_the_share_rule_is_drift_not_an_all_clear() -> None:
    # The window of the issue: age moves (PSI 8.2) and two more drift, 3 of 8 < share 0.5.
    summary = summary_of(scores(age=8.2, income=0.25, credit_score=0.21))
    assert summary["dataset"]["drifted"] is False
    assert summary["features_drifted"] == ["age", "credit_score", "income"]
    assert summary["severe"]["columns"] == ["age", "income", "credit_score"]
    assert summary["drift"] is True
    assert summary["reasons"] == [
        "severe feature drift (age PSI 8.20, income PSI 0.25, credit_score PSI 0.21)"
    ]
    markdown = render_markdown(summary)
    assert "no drift" not in markdown
    assert "**Dataset drift (share rule)**: no — 3 of 8 features drifted, share 0.38" in markdown
    assert "**Features drifted**: age, credit_score, income." in markdown
    assert "| age | psi | 8.2000 | 0.2 | **yes** (severe) |" in markdown
    assert "credit_risk_features_drifted 3.0" in prometheus_text(summary)


def test_a_feature_flagged_by_its_own_test_but_not_severe_is_named() -> None:
    column_scores = scores()
    column_scores["income"].update(method="ks", score=0.003, threshold=0.01, drifted=True)
    summary = summary_of(column_scores)
    assert summary["drift"] is False
    assert headline(summary) == (
        "features drifted: income (no dataset drift: share 0.12 < 0.5; none severe)"
    )
    assert "no drift" not in render_markdown(summary)


def test_dataset_drift_and_a_quiet_window() -> None:
    many = summary_of(scores(age=0.3, income=0.3, region=0.3, loan_amount=0.3))
    assert many["dataset"]["drifted"] is True
    assert many["reasons"][0] == "dataset drift (4/8 features)"
    quiet = summary_of(scores())
    assert (quiet["drift"], headline(quiet)) == (False, "no drift")
