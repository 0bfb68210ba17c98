"""A prepared window read in batches: a seeded uniform sample, every labelled row kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import monitoring.drift as drift
from tests.helpers import make_credit_frame, make_params


def test_a_large_window_is_sampled_while_read_and_its_labels_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = make_params(**{"monitoring.max_rows": 500, "monitoring.min_rows": 100})
    schema = params.data.schema
    frame = make_credit_frame(3000, seed=4)
    frame.loc[frame.index % 3 != 0, schema.target] = np.nan  # a third labelled
    frame["probability"] = np.linspace(0, 1, len(frame))
    frame["extra_log_column"] = "unused"
    path = tmp_path / "window.parquet"
    frame.to_parquet(path)
    monkeypatch.setattr(drift, "READ_BATCH_ROWS", 700)  # several batches, sampled across

    window = drift.sample_parquet(path, schema, params.monitoring, tmp_path / "labelled.parquet")
    again = drift.sample_parquet(path, schema, params.monitoring, tmp_path / "again.parquet")

    assert window.rows == 3000
    assert len(window.frame) == 500
    assert "extra_log_column" not in window.frame
    pd.testing.assert_frame_equal(window.frame, again.frame)  # seeded: the same sample
    # Uniform over the whole window, not the first batches: probability spans 0..1.
    assert window.frame["probability"].min() < 0.05
    assert window.frame["probability"].max() > 0.95
    labelled = pd.read_parquet(tmp_path / "labelled.parquet")
    assert window.labelled == tmp_path / "labelled.parquet"
    assert len(labelled) == 1000
    assert labelled[schema.target].notna().all()
    assert "probability" not in labelled


def test_a_window_without_labels_streams_no_file(tmp_path: Path) -> None:
    params = make_params()
    schema = params.data.schema
    frame = make_credit_frame(200, seed=5).drop(columns=[schema.target])
    path = tmp_path / "window.parquet"
    frame.to_parquet(path)
    window = drift.sample_parquet(path, schema, params.monitoring, tmp_path / "labelled.parquet")
    assert (window.rows, len(window.frame), window.labelled) == (200, 200, None)
    assert not (tmp_path / "labelled.parquet").exists()
