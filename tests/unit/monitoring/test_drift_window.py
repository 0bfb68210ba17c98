"""A prepared window read in batches: a seeded uniform sample, every labelled row kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import monitoring.drift as drift
from tests.helpers import REPO_ROOT, make_credit_frame, make_params


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


def logged_window(directory: Path) -> Path:
    """A log with four customers' predictions and three synthetic ones, labels of both kinds.

    p0 and s0 are labelled by feedback of their own kind; p1's only label was posted by a
    tool (``make traffic``'s mark) and must not reach the window either.
    """
    schema = make_params().data.schema
    rows = make_credit_frame(7, seed=8)[schema.features].to_dict("records")
    marks = [None, None, None, None, "smoke", "live-gate", "live-gate"]
    ids = ["p0", "p1", "p2", "p3", "s0", "s1", "s2"]
    predictions = [
        {
            "event": "prediction",
            "prediction_id": name,
            "prediction": 0,
            "probability": 0.2,
            "timestamp": f"2026-11-30T10:00:0{i}",
            **({"synthetic": mark} if mark else {}),
            **rows[i],
        }
        for i, (name, mark) in enumerate(zip(ids, marks, strict=True))
    ]
    labels = {"p0": None, "s0": "smoke", "p1": "traffic"}
    feedback = [
        {
            "event": "feedback",
            "prediction_id": name,
            "prediction": 0,
            "label": 1,
            "timestamp": "2026-11-30T11:00:00",
            **({"synthetic": mark} if mark else {}),
        }
        for name, mark in labels.items()
    ]
    return write_log(directory, predictions + feedback)


def test_synthetic_predictions_and_labels_are_left_out_of_the_window_and_counted(
    tmp_path: Path,
) -> None:
    import datetime as dt

    schema = make_params().data.schema
    logs = [str(logged_window(tmp_path / "champion"))]
    window = drift.load_window(logs, dt.datetime(2026, 11, 30), dt.datetime(2026, 12, 1), schema)
    assert window.frame.set_index("prediction_id")[schema.target].to_dict() == pytest.approx(
        {"p0": 1.0, "p1": np.nan, "p2": np.nan, "p3": np.nan}, nan_ok=True
    )
    assert "synthetic" not in window.frame
    assert window.synthetic == {"live-gate": 2, "smoke": 1}


def test_a_window_of_synthetic_predictions_only_is_no_window(tmp_path: Path) -> None:
    import datetime as dt

    schema = make_params().data.schema
    logs = [str(logged_window(tmp_path / "champion"))]
    # Only s0..s2 (10:00:04 to 10:00:06) fall in this window: every one synthetic.
    start, end = dt.datetime(2026, 11, 30, 10, 0, 4), dt.datetime(2026, 11, 30, 10, 0, 7)
    with pytest.raises(drift.DriftJobError, match=r"3 synthetic predictions \(live-gate 2"):
        drift.load_window(logs, start, end, schema)


def test_the_drift_job_prints_what_it_left_out_and_keeps_it_from_the_retraining_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Evidently stands aside: the verdict is drift, the window's outputs are the job's own.
    class Snapshot:
        def save_html(self, path: str) -> None:
            Path(path).write_text("<html></html>", encoding="utf-8")

    def verdict(window: drift.Window, *_: object) -> drift.DriftResult:
        params = make_params()
        scores = {
            column: {"score": 9.0, "method": "psi", "threshold": 0.2, "drifted": True}
            for column in params.data.schema.features
        }
        rows = len(window.frame)
        summary = drift.summarize(window, scores, None, params.monitoring, rows, rows)
        return drift.DriftResult(summary, Snapshot(), None)

    monkeypatch.setattr(drift, "judge", verdict)
    reference = tmp_path / "train.parquet"
    make_credit_frame(50, seed=9).to_parquet(reference)
    (tmp_path / "metrics.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "drift"
    code = drift.main(
        [
            *("--logs", str(logged_window(tmp_path / "champion"))),
            *("--start", "2026-11-30T00:00:00", "--end", "2026-12-01T00:00:00"),
            *("--params", str(REPO_ROOT / "params.yaml"), "--reference", str(reference)),
            *("--reference-predictions", str(tmp_path / "none.parquet")),
            *("--metrics", str(tmp_path / "metrics.json"), "--out-dir", str(out)),
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "drift: left out 3 synthetic predictions (live-gate 2, smoke 1)" in printed
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["window"]["rows"] == 4
    assert summary["window"]["synthetic_left_out"] == {"live-gate": 2, "smoke": 1}
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "4 rows (4 compared); 3 synthetic predictions (live-gate 2, smoke 1) left out." in (
        markdown
    )
    # What monitoring.retrain adds to the training data: p0's row alone, with its label.
    labelled = pd.read_parquet(out / "labelled.parquet")
    schema = make_params().data.schema
    assert labelled[schema.target].tolist() == [1]
    expected = make_credit_frame(7, seed=8)[schema.features].iloc[[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        labelled[schema.features].reset_index(drop=True), expected, check_dtype=False
    )
