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


def write_log(directory: Path, records: list[dict[str, object]]) -> Path:
    """Records as BentoML's monitor writes them: JSON lines in <dir>/credit_risk/data/."""
    import json

    data = directory / "credit_risk" / "data"
    data.mkdir(parents=True)
    (data / "data.1.log").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def test_labels_join_when_one_variants_log_has_nothing_in_the_window(tmp_path: Path) -> None:
    # The demo's drift act found "0 labelled rows": the challenger's log had no prediction in
    # the window, its empty selection kept the feedback's `label` column, and the join
    # made label_x/label_y instead of the target.
    import datetime as dt

    schema = make_params().data.schema
    rows = make_credit_frame(3, seed=6)[schema.features].to_dict("records")
    champion = [
        {
            "event": "prediction",
            "prediction_id": f"p{i}",
            "prediction": 0,
            "probability": 0.2,
            "timestamp": f"2026-11-30T10:00:0{i}",
            **row,
        }
        for i, row in enumerate(rows)
    ] + [
        {
            "event": "feedback",
            "prediction_id": "p1",
            "prediction": 0,
            "label": 1,
            "timestamp": "2026-11-30T10:05:00",
        }
    ]
    challenger = [
        {
            "event": "prediction",
            "prediction_id": "old",
            "prediction": 1,
            "probability": 0.9,
            "timestamp": "2026-11-29T10:00:00",
            **rows[0],
        },
        {
            "event": "feedback",
            "prediction_id": "old",
            "prediction": 1,
            "label": 0,
            "timestamp": "2026-11-29T10:01:00",
        },
    ]
    logs = [
        str(write_log(tmp_path / "champion", champion)),
        str(write_log(tmp_path / "challenger", challenger)),
    ]
    window = drift.load_window(logs, dt.datetime(2026, 11, 30), dt.datetime(2026, 12, 1), schema)
    assert len(window.frame) == 3
    assert [c for c in window.frame.columns if c.startswith("label")] == []
    assert window.frame.set_index("prediction_id")[schema.target].to_dict() == pytest.approx(
        {"p0": np.nan, "p1": 1.0, "p2": np.nan}, nan_ok=True
    )


def test_an_unexpected_error_exits_2_not_1_which_means_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> drift.Window:
        raise AttributeError("a bug")

    monkeypatch.setattr(drift, "sample_parquet", broken)
    window = tmp_path / "window.parquet"
    make_credit_frame(10, seed=1).to_parquet(window)
    assert drift.run(["--current", str(window), "--out-dir", str(tmp_path / "out")]) == 2
