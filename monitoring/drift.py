"""The drift job: ``python -m monitoring.drift`` (``make drift``).

Compares a production window with the training split, with Evidently's current API
(``Report``/``Dataset``/``DataDefinition``, ``DataDriftPreset`` with tests):

* the **window**: the service's prediction logs (``--logs``: a folder or any fsspec URL such
  as ``s3://bucket/logs``) over ``--start``/``--end`` (default: the last
  ``monitoring.window_days``), joined with the feedback labels, less the records of the
  requests a tool marked as synthetic (smoke test, live gate, ``make traffic``: counted and
  printed, kept in the logs); or a prepared table
  (``--current``: Parquet/CSV with the feature columns, optionally ``probability`` and the
  target);
* the **reference**: the training split (``data/split/train.parquet``, from DVC) and, for
  prediction drift, the model's probabilities on the test split (``reports/predictions.parquet``);
* an explicit ``DataDefinition`` from ``data.schema`` (otherwise low-cardinality integer
  columns would be taken as categorical), the method and threshold of
  ``monitoring.features`` / ``monitoring.per_column``, a minimum window (``min_rows``: no
  verdict below) and a sample cap (``max_rows``).

Writes ``reports/drift/report.html`` (self-contained), ``reports/drift/summary.json`` (per
column score, method, threshold, drifted; dataset drift share and verdict; prediction drift;
performance against ``metrics.json`` when labels are present) and
``reports/drift/metrics.prom`` (Prometheus text format; pushed to a Pushgateway with
``--pushgateway URL``). Exit 0: ran, no drift (or features drifted below the dataset rule and
none severely: reported, not an all-clear); 1: ran, drift; 2: could not run (the reason
is printed), including a window below ``min_rows``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bentos.prediction_log import (
    FEEDBACK_EVENT,
    PREDICTION_EVENT,
    SYNTHETIC_HEADER,
    drop_synthetic,
    in_window,
    read_log,
    select,
)
from pipeline.exit_codes import ExitCode
from pipeline.io import read_json, read_table
from pipeline.params import (
    DEFAULT_PARAMS_PATH,
    DriftTest,
    MonitoringParams,
    Params,
    ParamsError,
    SchemaParams,
    load_params,
)

PROBABILITY = "probability"


class DriftJobError(RuntimeError):
    """The job cannot reach a verdict; the message says why."""


@dataclass(frozen=True)
class Window:
    """The production rows to judge, with labels where feedback arrived.

    ``rows`` is the window's size when ``frame`` is a sample of it (a table sampled while
    read); ``labelled`` then names the file its labelled rows were streamed to.
    ``synthetic`` counts, by source, the logged predictions of the window left out because
    a tool marked their request as synthetic.
    """

    frame: pd.DataFrame
    start: str | None
    end: str | None
    rows: int | None = None
    labelled: Path | None = None
    synthetic: Counter[str] = field(default_factory=Counter)


READ_BATCH_ROWS = 262_144


def sample_parquet(
    path: Path, schema: SchemaParams, settings: MonitoringParams, labelled_out: Path
) -> Window:
    """A prepared Parquet window, sampled while read: memory bounded by one batch.

    ``max_rows`` rows are drawn uniformly without replacement (seeded: ``seed``) from the
    window's columns the job uses; every labelled row is streamed to ``labelled_out`` for
    the retraining PR. A 10-million-row window never sits in memory whole.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    total = table.metadata.num_rows
    wanted = [
        *([schema.event_time] if schema.event_time else []),
        *schema.features,
        schema.target,
        PROBABILITY,
        "prediction",
    ]
    columns = [c for c in wanted if c in table.schema_arrow.names]
    keep = np.sort(
        np.random.default_rng(settings.seed).choice(
            total, size=min(settings.max_rows, total), replace=False
        )
    )
    sampled, offset, writer = [], 0, None
    labelled_columns = [c for c in columns if c not in (PROBABILITY, "prediction")]
    labelled_out.unlink(missing_ok=True)
    try:
        for batch in table.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
            low, high = np.searchsorted(keep, [offset, offset + batch.num_rows])
            if high > low:
                sampled.append(batch.take(pa.array(keep[low:high] - offset)))
            if schema.target in columns:
                labelled = batch.select(labelled_columns).filter(
                    pc.is_valid(batch.column(schema.target))
                )
                if labelled.num_rows:
                    if writer is None:
                        labelled_out.parent.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(labelled_out, labelled.schema)
                    writer.write_batch(labelled)
            offset += batch.num_rows
    except BaseException:
        labelled_out.unlink(missing_ok=True)  # half written: not a window's labels
        raise
    finally:
        if writer is not None:
            writer.close()
    selected = pa.schema([table.schema_arrow.field(column) for column in columns])
    frame = pa.Table.from_batches(sampled, schema=selected).to_pandas()
    return Window(frame, None, None, total, labelled_out if writer is not None else None)


def load_window(
    logs: Sequence[str], start: dt.datetime, end: dt.datetime, schema: SchemaParams
) -> Window:
    """Predictions logged in ``[start, end)`` (every log folder) with their feedback labels.

    The records of synthetic requests (smoke test, live gate, ``make traffic``) are left out,
    predictions and feedback alike: fabricated rows and labels must reach neither the verdict
    nor the retraining data. The window's predictions left out are counted in
    :attr:`Window.synthetic`.
    """
    # One read per log: predictions of the window, feedback of any time (labels come later).
    records = [read_log(log) for log in logs]
    predictions, synthetic = drop_synthetic(
        pd.concat(
            [select(in_window(log, start, end), PREDICTION_EVENT) for log in records],
            ignore_index=True,
        )
    )
    if predictions.empty:
        left_out = f" ({describe_synthetic(synthetic)} left out)" if synthetic else ""
        raise DriftJobError(
            f"no predictions logged in {', '.join(logs)} between {start} and {end}{left_out}"
        )
    feedback, _ = drop_synthetic(
        pd.concat([select(log, FEEDBACK_EVENT) for log in records], ignore_index=True)
    )
    # The log's own timestamp is the row's event time; without one in the schema it is
    # dropped (a retraining window must match the training table's columns).
    if schema.event_time is not None:
        frame = predictions.rename(columns={"timestamp": schema.event_time})
    else:
        frame = predictions.drop(columns=["timestamp"], errors="ignore")
    if not feedback.empty and "label" in feedback:
        labels = feedback.drop_duplicates("prediction_id", keep="last")[["prediction_id", "label"]]
        frame = frame.merge(labels, on="prediction_id", how="left")
        frame = frame.rename(columns={"label": schema.target})
    return Window(frame, start.isoformat(), end.isoformat(), synthetic=synthetic)


def describe_synthetic(synthetic: Counter[str]) -> str:
    """``12 synthetic predictions (live-gate 10, smoke 2)``: what a window left out."""
    sources = ", ".join(f"{source} {count}" for source, count in sorted(synthetic.items()))
    return f"{synthetic.total()} synthetic predictions ({sources})"


def _evidently() -> Any:
    """The evidently package, imported lazily (~5 s) and without its import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import evidently
        import evidently.presets

    return evidently


def definition(schema: SchemaParams, columns: Sequence[str]) -> Any:
    """Evidently's DataDefinition of ``columns`` from the params schema.

    Explicit, or Evidently would take low-cardinality integer columns as categorical.
    """
    numerical = [*schema.numeric_features, PROBABILITY]
    return _evidently().DataDefinition(
        numerical_columns=[c for c in columns if c in numerical],
        categorical_columns=[c for c in columns if c in schema.categorical_features],
    )


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tests: dict[str, DriftTest],
    schema: SchemaParams,
    drift_share: float,
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Evidently's data drift report over ``tests``' columns, one method each.

    Returns:
        The snapshot (for the HTML) and ``{column: {score, method, threshold, drifted}}``.
    """
    columns = list(tests)
    methods = {column: test.method for column, test in tests.items()}
    thresholds = {column: test.threshold for column, test in tests.items()}
    evidently = _evidently()
    Dataset, Report = evidently.Dataset, evidently.Report
    DataDriftPreset = evidently.presets.DataDriftPreset

    data_definition = definition(schema, columns)
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                drift_share=drift_share,
                per_column_method=methods,
                per_column_threshold=thresholds,
            )
        ],
        include_tests=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evidently's own deprecations and runtime notes
        snapshot = report.run(
            current_data=Dataset.from_pandas(current[columns], data_definition=data_definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=data_definition),
        )
    document = snapshot.dict()
    scores: dict[str, dict[str, Any]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = {
                "score": round(float(metric["value"]), 6),
                "method": config["method"],
                "threshold": config["threshold"],
            }
    for test in document["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        column = params.get("column")
        if column in scores and params.get("type", "").endswith("ValueDrift"):
            scores[column]["drifted"] = str(test["status"]).endswith("FAIL")
    return snapshot, scores


def performance(
    frame: pd.DataFrame, target: str, reference_metrics: dict[str, Any], settings: MonitoringParams
) -> dict[str, Any] | None:
    """Accuracy of the labelled rows against the reference metrics, if enough labels."""
    if target not in frame or "prediction" not in frame:
        return None
    labelled = frame.dropna(subset=[target])
    if len(labelled) < settings.min_labelled:
        return {"labelled": len(labelled), "enough": False}
    from sklearn.metrics import roc_auc_score

    truth = labelled[target].astype(int)
    result: dict[str, Any] = {"labelled": len(labelled), "enough": True, "degraded": False}
    window = {"accuracy": float((labelled["prediction"].astype(int) == truth).mean())}
    if PROBABILITY in labelled and truth.nunique() == 2:
        window["roc_auc"] = float(roc_auc_score(truth, labelled[PROBABILITY]))
    limits = {"accuracy": settings.max_accuracy_drop, "roc_auc": settings.max_roc_auc_drop}
    for name, value in window.items():
        reference = float(reference_metrics["model"][name])
        drop = reference - value
        result[name] = {
            "window": round(value, 6),
            "reference": round(reference, 6),
            "drop": round(drop, 6),
            "max_drop": limits[name],
            "degraded": drop > limits[name],
        }
        result["degraded"] = result["degraded"] or drop > limits[name]
    return result


def severe_columns(features: dict[str, dict[str, Any]], severe_psi: float) -> list[str]:
    """Feature columns whose PSI is above ``severe_psi``, largest shift first."""
    severe = [
        column
        for column, values in features.items()
        if values["method"] == "psi" and values["score"] > severe_psi
    ]
    return sorted(severe, key=lambda column: -features[column]["score"])


def summarize(
    window: Window,
    scores: dict[str, dict[str, Any]],
    perf: dict[str, Any] | None,
    settings: MonitoringParams,
    rows: int,
    sampled: int,
) -> dict[str, Any]:
    """The JSON summary (see the module docstring).

    Three findings are kept apart: **dataset drift** (Evidently's share rule: at least
    ``drift_share`` of the features drifted), the **features drifted** (each its own test),
    and the **severe** ones (PSI above ``severe_psi``). The verdict is drift when the dataset
    drifted, a feature drifted severely, the predictions drifted or the performance dropped;
    a feature drifted below those bars is reported as such, never as an all-clear.
    """
    features = {c: v for c, v in scores.items() if c != PROBABILITY}
    drifted = sorted(c for c, v in features.items() if v.get("drifted"))
    severe = severe_columns(features, settings.severe_psi)
    share = len(drifted) / len(features) if features else 0.0
    dataset_drift = share >= settings.drift_share
    prediction = scores.get(PROBABILITY)
    prediction_drift = bool(prediction and prediction.get("drifted"))
    degraded = bool(perf and perf.get("degraded"))
    severe_text = ", ".join(f"{c} PSI {features[c]['score']:.2f}" for c in severe)
    return {
        "window": {
            "start": window.start,
            "end": window.end,
            "rows": rows,
            "sampled": sampled,
            "synthetic_left_out": dict(sorted(window.synthetic.items())),
        },
        "columns": features,
        "dataset": {
            "drift_share": round(share, 4),
            "drifted_columns": drifted,
            "threshold_share": settings.drift_share,
            "drifted": dataset_drift,
        },
        "features_drifted": drifted,
        "severe": {"psi_above": settings.severe_psi, "columns": severe},
        "prediction": prediction,
        "performance": perf,
        "drift": dataset_drift or bool(severe) or prediction_drift or degraded,
        "reasons": [
            reason
            for reason, flag in (
                (f"dataset drift ({len(drifted)}/{len(features)} features)", dataset_drift),
                (f"severe feature drift ({severe_text})", bool(severe)),
                ("prediction drift", prediction_drift),
                ("performance drop", degraded),
            )
            if flag
        ],
    }


def headline(summary: dict[str, Any]) -> str:
    """The verdict in a few words: drift and why, features drifted, or no drift."""
    if summary["drift"]:
        return "DRIFT: " + "; ".join(summary["reasons"])
    drifted = summary["features_drifted"]
    if drifted:
        dataset = summary["dataset"]
        return (
            f"features drifted: {', '.join(drifted)} (no dataset drift: share "
            f"{dataset['drift_share']:.2f} < {dataset['threshold_share']}; none severe)"
        )
    return "no drift"


def render_markdown(summary: dict[str, Any]) -> str:
    """The summary for humans: the job summary and the retraining PR's body."""
    window = summary["window"]
    dataset = summary["dataset"]
    features = summary["columns"]
    drifted = summary["features_drifted"]
    severe = summary["severe"]
    left_out = Counter(window.get("synthetic_left_out") or {})
    lines = [
        f"## Drift report: {headline(summary)}",
        "",
        f"Window {window['start'] or '(prepared file)'} → {window['end'] or ''}: "
        f"{window['rows']} rows ({window['sampled']} compared)"
        + (f"; {describe_synthetic(left_out)} left out." if left_out else "."),
        "",
        f"- **Dataset drift (share rule)**: {'yes' if dataset['drifted'] else 'no'} — "
        f"{len(drifted)} of {len(features)} features drifted, share "
        f"{dataset['drift_share']:.2f} (dataset drift at {dataset['threshold_share']}).",
        f"- **Features drifted**: {', '.join(drifted) if drifted else 'none'}.",
        f"- **Severe (PSI above {severe['psi_above']})**: "
        f"{', '.join(severe['columns']) if severe['columns'] else 'none'}.",
        "",
        "| column | method | score | threshold | drifted |",
        "|---|---|---|---|---|",
    ]
    rows = dict(features)
    if summary["prediction"]:
        rows["(predicted probability)"] = summary["prediction"]
    for column, values in rows.items():
        mark = "**yes**" if values.get("drifted") else "no"
        if column in severe["columns"]:
            mark += " (severe)"
        lines.append(
            f"| {column} | {values['method']} | {values['score']:.4f} "
            f"| {values['threshold']} | {mark} |"
        )
    perf = summary["performance"]
    if perf and perf.get("enough"):
        lines += ["", "| metric | window | reference | drop | max drop |", "|---|---|---|---|---|"]
        for name in ("accuracy", "roc_auc"):
            if name in perf:
                m = perf[name]
                lines.append(
                    f"| {name} | {m['window']:.4f} | {m['reference']:.4f} "
                    f"| {m['drop']:+.4f} | {m['max_drop']} |"
                )
    elif perf:
        lines += ["", f"Only {perf['labelled']} labelled rows: performance not judged."]
    return "\n".join(lines) + "\n"


def prometheus_text(summary: dict[str, Any]) -> str:
    """The summary's series in Prometheus' text format (``metrics.prom``)."""
    from prometheus_client import generate_latest

    return generate_latest(drift_registry(summary)).decode()


def drift_registry(summary: dict[str, Any]) -> Any:
    """The summary as Prometheus series, for the textfile and the Pushgateway."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    score = Gauge(
        "credit_risk_feature_drift_score",
        "Drift score of a feature in the last window (method's own scale)",
        ["feature", "method"],
        registry=registry,
    )
    flagged = Gauge(
        "credit_risk_feature_drifted",
        "1 when the feature's drift score crossed its threshold",
        ["feature"],
        registry=registry,
    )
    for column, values in summary["columns"].items():
        score.labels(column, values["method"]).set(values["score"])
        flagged.labels(column).set(1.0 if values.get("drifted") else 0.0)
    Gauge(
        "credit_risk_dataset_drift_share", "Share of drifted feature columns", registry=registry
    ).set(summary["dataset"]["drift_share"])
    Gauge(
        "credit_risk_drift_detected", "1 when the drift job's verdict is drift", registry=registry
    ).set(1.0 if summary["drift"] else 0.0)
    if summary["window"].get("end"):
        # The relay tells GitHub which window alerted (DataDriftDetected's window_end).
        Gauge(
            "credit_risk_drift_window_end_seconds",
            "End of the window the drift job judged (Unix time)",
            registry=registry,
        ).set(dt.datetime.fromisoformat(summary["window"]["end"]).timestamp())
    Gauge(
        "credit_risk_features_drifted",
        "Feature columns whose own test flagged drift in the last window",
        registry=registry,
    ).set(len(summary["features_drifted"]))
    if summary["prediction"]:
        Gauge(
            "credit_risk_prediction_drift_score",
            "Drift score of the predicted probability",
            registry=registry,
        ).set(summary["prediction"]["score"])
    perf = summary["performance"]
    if perf and perf.get("enough"):
        Gauge(
            "credit_risk_window_accuracy",
            "Accuracy on the window's labelled rows",
            registry=registry,
        ).set(perf["accuracy"]["window"])
    return registry


# The reference probabilities come from the native model (float64, the evaluate stage),
# production's from ONNX Runtime (float32): equal to the export's parity tolerance (1e-5)
# but not bit-equal. Tree models give many tied probabilities, and a two-sample KS test on
# the raw values sees the two representations of each tie as a shift: 11 false alarms in
# 20 same-distribution windows, measured. Rounded to the parity tolerance, ties line up.
PROBABILITY_DIGITS = 5


def comparable_probabilities(frame: pd.DataFrame) -> pd.DataFrame:
    """The probability column as float64 rounded to :data:`PROBABILITY_DIGITS` decimals."""
    return frame[[PROBABILITY]].astype("float64").round(PROBABILITY_DIGITS)


@dataclass(frozen=True)
class DriftResult:
    """What :func:`judge` found: the summary and Evidently's snapshots for the HTML reports."""

    summary: dict[str, Any]
    snapshot: Any
    prediction_snapshot: Any | None

    @property
    def drift(self) -> bool:
        """Whether the verdict is drift."""
        return bool(self.summary["drift"])


def judge(
    window: Window,
    reference: pd.DataFrame,
    reference_predictions: pd.DataFrame | None,
    reference_metrics: dict[str, Any],
    params: Params,
) -> DriftResult:
    """Compare a window with the training data, the model's predictions and its metrics.

    Args:
        window: The production window (features, and probability/labels when logged).
        reference: The training split.
        reference_predictions: The model's test-split probabilities, if available.
        reference_metrics: ``metrics.json`` of the serving model.
        params: All of params.yaml (``monitoring`` and ``data.schema`` are used).

    Raises:
        DriftJobError: The window is too small or lacks feature columns.
    """
    settings, schema = params.monitoring, params.data.schema
    rows = window.rows if window.rows is not None else len(window.frame)
    if rows < settings.min_rows:
        raise DriftJobError(
            f"window has {rows} rows, fewer than monitoring.min_rows={settings.min_rows}: "
            "no verdict on a window this small"
        )
    current = window.frame
    if len(current) > settings.max_rows:
        current = current.sample(settings.max_rows, random_state=settings.seed)
    if len(reference) > settings.max_rows:
        reference = reference.sample(settings.max_rows, random_state=settings.seed)
    missing = [c for c in schema.features if c not in current.columns]
    if missing:
        raise DriftJobError(f"window lacks feature column(s) {missing}")
    tests = {
        column: settings.per_column.get(column, settings.features) for column in schema.features
    }
    snapshot, scores = run_report(reference, current, tests, schema, settings.drift_share)
    # The predicted probability against the model's own test-split probabilities, each
    # sample at its true size (a two-sample test must not see resampled duplicates).
    prediction_snapshot = None
    if PROBABILITY in current and reference_predictions is not None:
        prediction_snapshot, prediction_scores = run_report(
            comparable_probabilities(reference_predictions),
            comparable_probabilities(current),
            {PROBABILITY: settings.prediction},
            schema,
            1.0,
        )
        scores.update(prediction_scores)
    perf = performance(window.frame, schema.target, reference_metrics, settings)
    summary = summarize(window, scores, perf, settings, rows, len(current))
    return DriftResult(summary, snapshot, prediction_snapshot)


def write_outputs(result: DriftResult, window: Window, schema: SchemaParams, out_dir: Path) -> str:
    """The HTML reports, ``summary.json``/``.md``, the labelled rows and ``metrics.prom``.

    Returns:
        The summary's Markdown (for the job summary).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "labelled.parquet").unlink(missing_ok=True)  # an earlier window's
    result.snapshot.save_html(str(out_dir / "report.html"))
    if result.prediction_snapshot is not None:
        result.prediction_snapshot.save_html(str(out_dir / "prediction.html"))
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2), encoding="utf-8")
    if window.labelled is not None:
        window.labelled.replace(out_dir / "labelled.parquet")  # streamed while read
    elif schema.target in window.frame and window.frame[schema.target].notna().any():
        labelled = window.frame.dropna(subset=[schema.target])
        # The retraining PR adds these rows to the training data (monitoring/retrain.py).
        columns = [*([schema.event_time] if schema.event_time else []), *schema.features]
        columns.append(schema.target)
        labelled[[c for c in columns if c in labelled]].to_parquet(out_dir / "labelled.parquet")
    markdown = render_markdown(result.summary)
    (out_dir / "summary.md").write_text(markdown, encoding="utf-8")
    (out_dir / "metrics.prom").write_text(prometheus_text(result.summary), encoding="utf-8")
    return markdown


def print_verdict(summary: dict[str, Any], out_dir: Path) -> None:
    """One line per judged column, then the verdict."""
    judged = dict(summary["columns"])
    if summary["prediction"]:
        judged["(prediction)"] = summary["prediction"]
    for column, values in judged.items():
        flag = "DRIFT" if values.get("drifted") else "ok"
        print(
            f"drift: {column:<16} {values['method']:<12} score {values['score']:.4f} "
            f"(threshold {values['threshold']}) {flag}"
        )
    rows = summary["window"]["rows"]
    print(f"drift: {headline(summary)} ({rows} rows; report {out_dir / 'report.html'})")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; exit 0 (no drift), 1 (drift) or 2 (could not run)."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.drift", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--logs",
        action="append",
        help="a prediction log folder or fsspec URL (a service's GITOPS_ML_LOG_DIR); repeatable",
    )
    source.add_argument("--current", type=Path, help="a prepared window (Parquet/CSV)")
    parser.add_argument("--start", type=dt.datetime.fromisoformat, default=None)
    parser.add_argument("--end", type=dt.datetime.fromisoformat, default=None)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--reference", type=Path, default=Path("data/split/train.parquet"))
    parser.add_argument(
        "--reference-predictions", type=Path, default=Path("reports/predictions.parquet")
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics.json"))
    parser.add_argument("--out-dir", type=Path, default=Path("reports/drift"))
    parser.add_argument("--pushgateway", default=None, help="Pushgateway URL for the series")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.current is not None and args.current.suffix.lower() == ".parquet":
            args.out_dir.mkdir(parents=True, exist_ok=True)
            window = sample_parquet(
                args.current,
                params.data.schema,
                params.monitoring,
                args.out_dir / "labelled.streamed.parquet",
            )
        elif args.current is not None:
            window = Window(read_table(args.current), None, None)
        else:
            end = args.end or dt.datetime.now()
            start = args.start or end - dt.timedelta(days=params.monitoring.window_days)
            window = load_window(args.logs, start, end, params.data.schema)
            if window.synthetic:
                print(
                    f"drift: left out {describe_synthetic(window.synthetic)}: their requests "
                    f"carried {SYNTHETIC_HEADER} (kept in the logs)"
                )
        predictions = args.reference_predictions
        result = judge(
            window,
            read_table(args.reference),
            read_table(predictions) if predictions.is_file() else None,
            read_json(args.metrics),
            params,
        )
    except (DriftJobError, ParamsError, OSError, ValueError, KeyError) as error:
        print(f"drift: could not run: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    markdown = write_outputs(result, window, params.data.schema, args.out_dir)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
    if args.pushgateway:
        from prometheus_client import push_to_gateway

        registry = drift_registry(result.summary)
        push_to_gateway(args.pushgateway, job="credit_risk_drift", registry=registry)
    print_verdict(result.summary, args.out_dir)
    return ExitCode.FOUND_PROBLEM if result.drift else ExitCode.OK


def run(argv: Sequence[str] | None = None) -> int:
    """:func:`main`, with an unexpected error exiting 2 (could not run), never 1.

    Python exits 1 on an uncaught exception, which ``make drift`` and drift.yml would take
    for "drift found" and go on to the retraining PR.
    """
    try:
        return main(argv)
    except Exception as error:
        import traceback

        traceback.print_exc()
        print(f"drift: could not run: {type(error).__name__}: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED


if __name__ == "__main__":
    sys.exit(run())
