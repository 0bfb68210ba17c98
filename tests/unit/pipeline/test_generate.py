import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import generate as gen
from pipeline.generate import Window, default_probability, generate, write_dataset


def test_same_seed_gives_identical_rows_and_other_seed_differs():
    first, second = generate(500, 3), generate(500, 3)
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(generate(500, 4))


def test_columns_missing_values_and_default_rate():
    frame = generate(20_000, 0)
    assert list(frame.columns) == [
        "event_time",
        "age",
        "income",
        "credit_score",
        "loan_amount",
        "tenure_months",
        "n_late_payments",
        "region",
        "product_type",
        "default",
    ]
    for column in gen.NULLABLE_COLUMNS:
        assert 0.015 < frame[column].isna().mean() < 0.025
    assert frame.drop(columns=list(gen.NULLABLE_COLUMNS)).notna().all().all()
    assert 0.12 < frame["default"].mean() < 0.20
    assert frame["event_time"].is_monotonic_increasing
    assert frame["event_time"].min() >= pd.Timestamp("2025-01-01")
    assert frame["event_time"].max() < pd.Timestamp("2026-01-01")


def test_target_is_noisy_so_even_the_true_model_is_far_from_perfect():
    frame = generate(20_000, 1, Window(missing_rate=0))
    auc = roc_auc_score(frame["default"], default_probability(frame))
    assert 0.75 < auc < 0.85


def test_covariate_shift_moves_ages_but_keeps_the_concept():
    window = generate(5_000, 2, Window(drift="covariate", missing_rate=0))
    assert window["age"].between(18, 25).all()
    # P(Y|X) is unchanged: the generating probabilities still match the labels.
    predicted_rate = default_probability(window).mean()
    assert abs(window["default"].mean() - predicted_rate) < 0.05


def test_prior_shift_raises_default_rate_and_keeps_features_given_label():
    base = generate(20_000, 5)
    window = generate(20_000, 6, Window(drift="prior", prior_default_rate=0.35))
    assert window["default"].mean() == pytest.approx(0.35, abs=0.001)
    defaulted = window.loc[window["default"] == 1, "credit_score"].mean()
    assert defaulted == pytest.approx(base.loc[base["default"] == 1, "credit_score"].mean(), abs=5)


def test_concept_drift_breaks_the_training_relationship():
    window = generate(20_000, 7, Window(drift="concept", missing_rate=0))
    base_auc = roc_auc_score(window["default"], default_probability(window))
    assert base_auc < 0.72  # 0.80 on undrifted data


def test_chunked_parquet_equals_in_memory_generation(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "CHUNK_ROWS", 300)
    path = tmp_path / "data.parquet"
    write_dataset(path, 1_000, 9)
    written = pd.read_parquet(path)
    expected = generate(1_000, 9)
    assert len(written) == 1_000
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert written["event_time"].is_monotonic_increasing


def test_cli_writes_a_drift_window(tmp_path, capsys):
    out = tmp_path / "window.csv"
    code = gen.main(
        ["--out", str(out), "--rows", "300", "--drift", "covariate", "--start", "2026-03-01"]
    )
    assert code == 0
    window = pd.read_csv(out, parse_dates=["event_time"])
    assert len(window) == 300
    assert window["age"].max() <= 25
    assert window["event_time"].min().date() >= dt.date(2026, 3, 1)
    assert "300 rows (covariate drift)" in capsys.readouterr().out


def test_invalid_options_name_the_option():
    with pytest.raises(ValueError, match="drift: expected one of none, covariate"):
        Window(drift="sudden")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_rows: expected a positive number, got 0"):
        generate(0, 1)
    with pytest.raises(SystemExit):
        gen.main(["--out", "x.txt"])


def test_probability_is_between_zero_and_one():
    frame = generate(1_000, 11, Window(missing_rate=0))
    probability = default_probability(frame, noise=np.zeros(len(frame)))
    assert ((probability > 0) & (probability < 1)).all()
