"""Read the service's prediction and feedback logs (``bentoml.monitor``) back as tables.

BentoML's default monitor exporter writes one JSON object per line to
``<log_path>/<monitor name>/data/data.<worker>.log`` (rotated daily into
``data.<worker>.log.<date>``). It configures one fixed pair of Python loggers, so a
second monitor in the same process would redirect the first one's records into its own
file; predictions and feedback therefore share the :data:`MONITOR` log and are told
apart by the ``event`` column. The drift job reads them here.

Requests that no customer sent (the smoke test, the live gate, ``make traffic``) carry the
:data:`SYNTHETIC_HEADER` naming their source; the service logs it in the :data:`SYNTHETIC`
column of their records, and the drift job leaves those records out of its window (and so
of the retraining data) with :func:`drop_synthetic`. The logs keep every record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service imports the log names only; pandas is not in its image
    import pandas as pd

MONITOR = "credit_risk"
PREDICTION_EVENT = "prediction"
FEEDBACK_EVENT = "feedback"
# The request header a tool sets to mark its requests as not a customer's, valued with its
# source (smoke, live-gate, traffic), and the log column that records it. Customers' records
# have no such column: their log lines stay as they were, at no cost on the hot path.
SYNTHETIC_HEADER = "X-Gitops-Synthetic"
SYNTHETIC = "synthetic"
# The only values that mark a request: anything else a client sends is ignored (and never
# reaches a log, a summary or a PR body).
SYNTHETIC_SOURCES = frozenset({"smoke", "live-gate", "traffic"})


def read_log(
    log_dir: Path | str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Load every record logged in ``[start, end)``.

    Args:
        log_dir: BentoML's monitoring ``log_path`` (the service's ``GITOPS_ML_LOG_DIR``): a
            folder, or any fsspec URL (``s3://bucket/logs``) where the logs are shipped.
        start: First timestamp included (server local time, as logged); None for all.
        end: First timestamp excluded; None for all.

    Returns:
        One row per record with a parsed ``timestamp`` column, oldest first; an empty
        frame when nothing was logged.
    """
    import fsspec
    import pandas as pd

    filesystem, root = fsspec.core.url_to_fs(str(log_dir))
    records: list[dict[str, object]] = []
    for path in sorted(filesystem.glob(f"{root.rstrip('/')}/{MONITOR}/data/data.*.log*")):
        with filesystem.open(path, "rt", encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601")
    return in_window(frame, start, end).sort_values("timestamp", kind="stable", ignore_index=True)


def in_window(
    frame: pd.DataFrame, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> pd.DataFrame:
    """The records of ``frame`` logged in ``[start, end)`` (None: unbounded)."""
    import pandas as pd

    if frame.empty:
        return frame
    if start is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame["timestamp"] < pd.Timestamp(end)]
    return frame


def select(frame: pd.DataFrame, event: str) -> pd.DataFrame:
    """The records of one event (:data:`PREDICTION_EVENT` or :data:`FEEDBACK_EVENT`).

    Only the columns that event fills: an empty result has none, so concatenating the
    selections of several logs never brings another event's columns (a ``label`` of the
    feedback among the predictions).
    """
    import pandas as pd

    if frame.empty:
        return pd.DataFrame()
    rows = frame[frame["event"] == event].drop(columns="event")
    return rows.dropna(axis="columns", how="all").reset_index(drop=True)


def read_predictions(
    log_dir: Path | str, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> pd.DataFrame:
    """Predictions served in the window, with their features (see :func:`read_log`)."""
    return select(read_log(log_dir, start, end), PREDICTION_EVENT)


def read_feedback(
    log_dir: Path | str, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> pd.DataFrame:
    """Feedback labels received in the window (see :func:`read_log`)."""
    return select(read_log(log_dir, start, end), FEEDBACK_EVENT)


def drop_synthetic(frame: pd.DataFrame) -> tuple[pd.DataFrame, Counter[str]]:
    """The records of ``frame`` that no tool marked, and how many were left out by source.

    Args:
        frame: Records as :func:`read_log` returns them (any events).

    Returns:
        The unmarked records (without the :data:`SYNTHETIC` column) and ``{source: count}``
        of the marked ones.
    """
    if frame.empty or SYNTHETIC not in frame:
        return frame, Counter()
    source = frame[SYNTHETIC].fillna("").astype(str)
    marked = source != ""
    return frame[~marked].drop(columns=SYNTHETIC), Counter(source[marked].tolist())
