"""The BentoML service: the exported ONNX model behind validated HTTP endpoints.

Endpoints (all POST, JSON):

* ``/predict`` — 1 to 1,000 loan applications as records; returns per record the class,
  probability of default, model version, variant and a ``request_id`` for feedback.
* ``/predict_batch`` — a float32 matrix (columns as listed by ``/metadata``), adaptively
  batched across requests for throughput; returns the probabilities.
* ``/metadata`` — model tag and version, the Bento's build labels (commit, build time),
  metrics, schema and variant.
* ``/feedback`` — ``request_id`` and the true label, once known.

plus BentoML's ``/livez``, ``/readyz`` and ``/metrics``. The model tag is pinned by the
serving spec the export stage wrote (``models/serving.json``, or the file named by
``GITOPS_ML_SERVING_SPEC``); the request schema is derived from the same spec.

Environment: ``GITOPS_ML_VARIANT`` names the variant in metrics and logs (default
``champion``); ``GITOPS_ML_LOG_DIR`` is where prediction and feedback logs go (default
``logs/monitoring``, read back by :mod:`bentos.prediction_log`); ``GITOPS_ML_WORKERS`` and
``GITOPS_ML_THREADS`` size the server.

A request with the ``X-Gitops-Synthetic`` header (the smoke test, the live gate,
``make traffic``) is served and counted in Prometheus like any other; its log records carry
the header's value in a ``synthetic`` column, so the drift job can leave them out of its
window and of the retraining data.
"""

from __future__ import annotations

import gc
import json
import os
import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
import numpy as np
from bentoml.validators import DType
from prometheus_client import Counter, Histogram
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from bentos.middleware import JsonOnly, VariantHeader, use_for_bentoml_timeout
from bentos.prediction_log import (
    FEEDBACK_EVENT,
    MONITOR,
    PREDICTION_EVENT,
    SYNTHETIC,
    SYNTHETIC_HEADER,
    SYNTHETIC_SOURCES,
)
from bentos.schema import MAX_RECORDS, RowCheck, record_model
from bentos.settings import ServiceSettings
from pipeline.onnx_model import OnnxClassifier, feeds_from_columns

# A request id carries the predicted class after the dash, so feedback can be scored by
# any worker or replica without shared state.
REQUEST_ID = re.compile(r"^[0-9a-f]{32}-[01]$")
# A request that has not started its response by then gets a 504 (bentos.middleware).
REQUEST_TIMEOUT_S = 10.0
use_for_bentoml_timeout()


# Read at import on purpose: the API signatures (and the OpenAPI schema) are built from
# the model's input schema, and `bentoml build` must see the pinned model tag; the
# decorator's worker count and log path are settings too.
SETTINGS = ServiceSettings.from_env()
SPEC: dict[str, Any] = json.loads(SETTINGS.serving_spec.read_text(encoding="utf-8"))
SCHEMA: dict[str, Any] = SPEC["schema"]
FEATURES: list[str] = SPEC["features"]
NUMERIC: list[str] = SPEC["numeric_features"]
CATEGORICAL: list[str] = SPEC["categorical_features"]
LoanApplication = record_model(SCHEMA)


def bento_labels() -> dict[str, str]:
    """The labels of the Bento this module runs from (commit, build time); empty outside one.

    A Bento keeps the project under ``<bento>/src/``, next to its ``bento.yaml``. The
    model (tracked by DVC) must not depend on the commit, so the commit is only known here.
    """
    import yaml

    manifest = Path(__file__).resolve().parents[2] / "bento.yaml"
    if not manifest.is_file():
        return {}
    labels = (yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}).get("labels") or {}
    return {str(key): str(value) for key, value in labels.items()}


def synthetic_source(ctx: bentoml.Context) -> str:
    """The source a tool names in :data:`SYNTHETIC_HEADER`; empty for a customer's request."""
    source = str(ctx.request.headers.get(SYNTHETIC_HEADER, ""))
    return source if source in SYNTHETIC_SOURCES else ""


BUILD = bento_labels()
ROW_CHECK = RowCheck(SCHEMA, FEATURES)

LABELS = ("model_version", "variant")
PREDICTIONS = Counter(
    name="credit_risk_predictions_total",
    documentation="Predictions served, by predicted class",
    labelnames=[*LABELS, "predicted_class"],
)
PROBABILITY = Histogram(
    name="credit_risk_probability",
    documentation="Predicted probability of default",
    labelnames=list(LABELS),
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
CONFIDENCE = Histogram(
    name="credit_risk_confidence",
    documentation="Probability of the predicted class (0.5 to 1)",
    labelnames=list(LABELS),
    buckets=(0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
FEEDBACK = Counter(
    name="credit_risk_feedback_total",
    documentation="Feedback labels received",
    labelnames=list(LABELS),
)
FEEDBACK_CORRECT = Counter(
    name="credit_risk_feedback_correct_total",
    documentation="Feedback labels that matched the prediction",
    labelnames=list(LABELS),
)


class Prediction(BaseModel):
    """The answer for one record."""

    request_id: str
    predicted_class: int
    probability: float
    model_version: str
    variant: str


class Predictions(BaseModel):
    """The answer for a request, in the order of its records.

    A model rather than a bare list: BentoML rebuilds the JSON schema of a root-list
    response on every call to pick its media type (a third of a one-record request).
    """

    predictions: list[Prediction]


class FeedbackReceipt(BaseModel):
    """What the feedback endpoint recorded."""

    request_id: str
    label: int
    correct: bool


@bentoml.service(
    name="credit_risk",
    workers=SETTINGS.workers,
    # Enforced by BentoML's middleware running bentos.middleware.RequestTimeout's code,
    # which cancels its timer when the response starts (BentoML's leaves it running).
    traffic={"timeout": REQUEST_TIMEOUT_S},
    # Per-request access lines cost ~7% of a one-record request; the Prometheus
    # request metrics carry the same counts. GITOPS_ML_ACCESS_LOG=1 turns them back on.
    logging={"access": {"enabled": SETTINGS.access_log}},
    monitoring={
        "enabled": True,
        "type": "default",
        "options": {"log_path": SETTINGS.log_dir},
    },
)
class CreditRiskService:
    """Default-risk scoring with the pipeline's exported model."""

    model = bentoml.models.BentoModel(SPEC["tag"])

    def __init__(self) -> None:
        # The CPUs are shared by the workers: each ONNX Runtime session gets its share.
        threads = SETTINGS.onnx_threads(len(os.sched_getaffinity(0)))
        self.classifier = OnnxClassifier(self.model.path_of("model.onnx"), threads=threads)
        self.version = str(SPEC["version"])
        self.variant = SETTINGS.variant
        self.threshold = float(SPEC["threshold"])
        self.labels = {"model_version": self.version, "variant": self.variant}
        self.categories = {
            name: np.asarray(SCHEMA["columns"][name]["categories"]) for name in CATEGORICAL
        }
        # Every labelled series exists from the start, at zero: a variant that never gets
        # traffic still has the series LowPredictionVolume and the A/B queries read.
        for value in ("0", "1"):
            PREDICTIONS.labels(**self.labels, predicted_class=value)
        for metric in (PROBABILITY, CONFIDENCE, FEEDBACK, FEEDBACK_CORRECT):
            metric.labels(**self.labels)
        # What is loaded by now (BentoML, ONNX Runtime, the pydantic models: ~160,000
        # objects) lives as long as the worker: frozen out of the collector's sight, a full
        # collection walks only what serving creates (p99 at 32 connections 75 -> 33 ms,
        # throughput +7 %, docs/benchmarks.md).
        gc.collect()
        gc.freeze()

    def _score(self, columns: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        probability = self.classifier.predict_proba(
            feeds_from_columns(columns, NUMERIC, CATEGORICAL)
        )
        predicted = (probability >= self.threshold).astype(np.int64)
        for value in (0, 1):
            count = int(np.count_nonzero(predicted == value))
            if count:
                PREDICTIONS.labels(**self.labels, predicted_class=str(value)).inc(count)
        for p, c in zip(probability, predicted, strict=True):
            PROBABILITY.labels(**self.labels).observe(float(p))
            CONFIDENCE.labels(**self.labels).observe(float(p if c else 1.0 - p))
        return probability, predicted

    def _log_predictions(
        self,
        columns: dict[str, Any],
        ids: list[str],
        predicted: np.ndarray,
        probability: np.ndarray,
        synthetic: str,
    ) -> None:
        """One monitor record per scored row: tags, features, id, class, probability.

        ``synthetic``: the source of a tool's request, logged when set (see the module).
        """
        with bentoml.monitor(MONITOR) as monitor:
            size = len(ids)
            tags = {
                "event": PREDICTION_EVENT,
                "variant": self.variant,
                "model_version": self.version,
            }
            if synthetic:
                tags[SYNTHETIC] = synthetic
            for name, value in tags.items():
                monitor.log_batch(
                    [value] * size, name=name, role="prediction", data_type="categorical"
                )
            for name in NUMERIC:
                monitor.log_batch(columns[name], name=name, role="feature", data_type="numerical")
            for name in CATEGORICAL:
                monitor.log_batch(columns[name], name=name, role="feature", data_type="categorical")
            monitor.log_batch(ids, name="prediction_id", role="prediction", data_type="categorical")
            monitor.log_batch(
                predicted.tolist(), name="prediction", role="prediction", data_type="categorical"
            )
            monitor.log_batch(
                probability.tolist(), name="probability", role="prediction", data_type="numerical"
            )

    @bentoml.api
    async def predict(
        self,
        records: Annotated[list[LoanApplication], Field(min_length=1, max_length=MAX_RECORDS)],  # type: ignore[valid-type]  # built from the schema at import
        ctx: bentoml.Context,
    ) -> Predictions:
        """Score loan applications (1 to 1,000 records)."""
        columns = {name: [getattr(record, name) for record in records] for name in FEATURES}
        for name in NUMERIC:
            columns[name] = [np.nan if v is None else v for v in columns[name]]
        probability, predicted = self._score(columns)
        ids = [f"{uuid.uuid4().hex}-{c}" for c in predicted]
        self._log_predictions(columns, ids, predicted, probability, synthetic_source(ctx))
        return Predictions(
            predictions=[
                Prediction(
                    request_id=ids[i],
                    predicted_class=int(predicted[i]),
                    probability=float(probability[i]),
                    model_version=self.version,
                    variant=self.variant,
                )
                for i in range(len(ids))
            ]
        )

    @bentoml.api(batchable=True, max_batch_size=2_000, max_latency_ms=50)
    async def predict_batch(
        self,
        rows: Annotated[
            np.ndarray,
            DType("float32"),
            BeforeValidator(ROW_CHECK.parse),
            AfterValidator(ROW_CHECK),
        ],
    ) -> np.ndarray:
        """Probabilities of default for a float32 matrix; see /metadata 'batch_columns'."""
        columns: dict[str, Any] = {name: rows[:, i] for i, name in enumerate(NUMERIC)}
        for offset, name in enumerate(CATEGORICAL, start=len(NUMERIC)):
            columns[name] = self.categories[name][rows[:, offset].astype(np.int64)]
        probability, _ = self._score(columns)
        return probability.astype(np.float32)

    @bentoml.api
    async def metadata(self) -> dict[str, Any]:
        """The served model: tag, version, build labels, metrics, schema and variant."""
        return {
            "tag": SPEC["tag"],
            "model_version": self.version,
            "git_sha": BUILD.get("git_sha"),
            "built_at": BUILD.get("built_at"),
            "family": SPEC["family"],
            "variant": self.variant,
            "threshold": self.threshold,
            "metrics": SPEC["metrics"],
            "schema": SCHEMA,
            "batch_columns": NUMERIC + CATEGORICAL,
            "category_codes": {name: list(self.categories[name]) for name in CATEGORICAL},
            "training_data_md5": SPEC["training_data_md5"],
        }

    @bentoml.api
    async def feedback(
        self,
        request_id: Annotated[str, Field(pattern=REQUEST_ID.pattern)],
        label: Literal[0, 1],
        ctx: bentoml.Context,
    ) -> FeedbackReceipt:
        """Record the true label of an earlier prediction."""
        predicted = int(request_id.rsplit("-", 1)[1])
        correct = predicted == label
        FEEDBACK.labels(**self.labels).inc()
        if correct:
            FEEDBACK_CORRECT.labels(**self.labels).inc()
        with bentoml.monitor(MONITOR) as monitor:
            columns: dict[str, str | int] = {
                "event": FEEDBACK_EVENT,
                "variant": self.variant,
                "model_version": self.version,
                "prediction_id": request_id,
                "prediction": predicted,
            }
            synthetic = synthetic_source(ctx)
            if synthetic:
                columns[SYNTHETIC] = synthetic
            for name, value in columns.items():
                monitor.log(value, name=name, role="prediction", data_type="categorical")
            monitor.log(label, name="label", role="target", data_type="categorical")
        return FeedbackReceipt(request_id=request_id, label=label, correct=correct)


CreditRiskService.add_asgi_middleware(JsonOnly)  # type: ignore[attr-defined]  # added by @bentoml.service
CreditRiskService.add_asgi_middleware(  # type: ignore[attr-defined]
    VariantHeader, variant=SETTINGS.variant
)
