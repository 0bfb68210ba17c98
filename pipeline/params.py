"""The one typed loader for params.yaml.

Every stage reads its settings through :func:`load_params`. The models are frozen and
forbid unknown keys, so a typo in params.yaml fails at start-up with the key's full
path instead of being silently ignored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PARAMS_PATH = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or breaks a rule of the models below."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Frozen):
    """One feature column of the input table."""

    dtype: Literal["int", "float", "category"]
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _check_consistent(self) -> ColumnSpec:
        if self.dtype == "category":
            if not self.categories:
                raise ValueError("a category column needs a non-empty 'categories' list")
            if self.min is not None or self.max is not None:
                raise ValueError("'min'/'max' apply to numeric columns, not categories")
        elif self.categories is not None:
            raise ValueError(f"'categories' applies to category columns, not {self.dtype}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SchemaParams(_Frozen):
    """The input table: feature columns, target, event time and data-quality budgets."""

    target: str
    # Optional: without it, splits and windows use what needs no time (``split.method: hash``).
    event_time: str | None = None
    max_missing_fraction: float = Field(ge=0, le=1)
    allow_duplicates: bool
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _check_names(self) -> SchemaParams:
        if not self.columns:
            raise ValueError("'columns' must declare at least one feature")
        for special in (self.target, self.event_time):
            if special is not None and special in self.columns:
                raise ValueError(f"'{special}' is the target or event time; not a feature column")
        if self.target == self.event_time:
            raise ValueError("'target' and 'event_time' must be different columns")
        return self

    @property
    def numeric_features(self) -> list[str]:
        """Feature columns with an int or float dtype, in declaration order."""
        return [name for name, spec in self.columns.items() if spec.dtype != "category"]

    @property
    def categorical_features(self) -> list[str]:
        """Feature columns with a category dtype, in declaration order."""
        return [name for name, spec in self.columns.items() if spec.dtype == "category"]

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first then categorical (the model's input order)."""
        return self.numeric_features + self.categorical_features


class GeneratorParams(_Frozen):
    """Size and shape of the embedded synthetic dataset."""

    n_rows: int = Field(gt=0)
    seed: int
    missing_rate: float = Field(ge=0, lt=1)
    start: dt.date
    days: int = Field(gt=0)


class DataParams(_Frozen):
    """Where the data comes from and what it must look like."""

    source: Literal["generator", "file"]
    path: Path
    # Labelled production windows (Parquet, DVC-tracked), appended to the source data.
    windows_dir: Path
    generator: GeneratorParams
    schema_: SchemaParams = Field(alias="schema")

    @property
    def schema(self) -> SchemaParams:  # type: ignore[override]  # "schema" is BaseModel's deprecated classmethod; the key is ours.
        """The table schema (``data.schema`` in params.yaml)."""
        return self.schema_

    @model_validator(mode="after")
    def _check_path(self) -> DataParams:
        if self.source == "file" and self.path.suffix.lower() not in {".csv", ".parquet"}:
            raise ValueError(f"path must end in .csv or .parquet, got '{self.path}'")
        return self


class SplitParams(_Frozen):
    """Train/validation/test split."""

    method: Literal["hash", "stratified", "time"]
    val_fraction: float = Field(gt=0, lt=1)
    test_fraction: float = Field(gt=0, lt=1)
    seed: int
    # The columns whose values fix a row's part under ``hash`` (default: the features and
    # the event time). Never the target: a corrected label must not move its row.
    key_columns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check_sum(self) -> SplitParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be below 1, got "
                f"{self.val_fraction + self.test_fraction}"
            )
        return self


class SklearnParams(_Frozen):
    """scikit-learn model family."""

    estimator: Literal["gradient_boosting", "logistic_regression"]
    n_estimators: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    max_depth: int = Field(gt=0)
    subsample: float = Field(gt=0, le=1)
    C: float = Field(gt=0)


class TorchParams(_Frozen):
    """Tabular MLP model family."""

    hidden_sizes: tuple[int, ...] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    patience: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda"]
    amp: bool
    gpus: int = Field(ge=1)
    num_workers: int = Field(ge=0)


class TrainParams(_Frozen):
    """Which model family to train, and its hyperparameters."""

    model: Literal["sklearn", "torch"]
    seed: int
    sklearn: SklearnParams
    torch: TorchParams


class GroupParams(_Frozen):
    """The groups whose metrics the model card and the fairness gate report."""

    columns: tuple[str, ...] = ()
    # Numeric columns are cut into bands at these edges, e.g. age: [30, 45, 60].
    bands: dict[str, tuple[float, ...]] = {}

    @model_validator(mode="after")
    def _check_bands(self) -> GroupParams:
        for column, edges in self.bands.items():
            if column not in self.columns:
                raise ValueError(
                    f"bands.{column}: not one of the group columns {list(self.columns)}"
                )
            if not edges or list(edges) != sorted(set(edges)):
                raise ValueError(f"bands.{column}: expected increasing edges, got {list(edges)}")
        return self


class EvaluateParams(_Frozen):
    """Evaluation settings."""

    threshold: float = Field(gt=0, lt=1)
    groups: GroupParams = GroupParams()


class ExportParams(_Frozen):
    """ONNX export and registration in the BentoML model store."""

    model_name: str = Field(pattern=r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
    parity_tolerance: float = Field(gt=0)


METRIC_NAMES = ("accuracy", "f1", "roc_auc", "log_loss", "precision", "recall")
GROUP_METRICS = ("roc_auc", "recall", "selection_rate")


class RegressionParams(_Frozen):
    """The paired comparison of the candidate with the reference model on the same rows."""

    # Largest drop the gate tolerates per metric (log_loss: largest rise).
    tolerances: dict[str, float]
    confidence: float = Field(gt=0.5, lt=1)
    resamples: int = Field(ge=100)
    seed: int = 0


class FairnessParams(_Frozen):
    """Limits on the per-group metric of ``evaluate.groups``."""

    metric: Literal["roc_auc", "recall", "selection_rate"]
    floor: float = Field(ge=0, le=1)
    max_gap: float = Field(ge=0, le=1)
    # Groups with fewer test rows are reported but not judged (too noisy).
    min_rows: int = Field(ge=1)


class LiveParams(_Frozen):
    """The load run against staging's router before production (the built artifact)."""

    requests: int = Field(ge=10)
    concurrency: int = Field(ge=1)
    p95_ms: float = Field(gt=0)
    max_error_rate: float = Field(ge=0, le=1)


class GateParams(_Frozen):
    """Thresholds a model must meet before it is reported green or released."""

    floors: dict[str, float]
    regression: RegressionParams
    fairness: FairnessParams
    latency_p95_ms: float = Field(gt=0)
    model_size_mb: float = Field(gt=0)
    live: LiveParams

    @model_validator(mode="after")
    def _check_metrics(self) -> GateParams:
        known = set(METRIC_NAMES)
        sections = (("floors", self.floors), ("regression.tolerances", self.regression.tolerances))
        for section, values in sections:
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(
                    f"{section}: unknown metric(s) {', '.join(unknown)}; "
                    f"expected some of {', '.join(sorted(known))}"
                )
        return self


class DriftTest(_Frozen):
    """An Evidently drift method and the threshold that flags drift."""

    method: str = Field(min_length=1)
    threshold: float = Field(gt=0)


class RetrainingParams(_Frozen):
    """When drift opens a retraining PR (``monitoring.retraining``; README, "Monitoring")."""

    # How long DataDriftDetected must hold before it asks for retraining: the rule's
    # ``for:`` in monitoring/prometheus/rules.yml (a test keeps the two equal).
    persistence_minutes: int = Field(ge=0)
    # No retraining of a model younger than this (it has not met the new traffic yet).
    min_model_age_hours: float = Field(ge=0)


class MonitoringParams(_Frozen):
    """The drift job (``python -m monitoring.drift``)."""

    window_days: float = Field(gt=0)
    min_rows: int = Field(ge=1)
    max_rows: int = Field(ge=1)
    drift_share: float = Field(gt=0, le=1)
    features: DriftTest
    per_column: dict[str, DriftTest] = {}
    prediction: DriftTest
    max_accuracy_drop: float = Field(ge=0, le=1)
    max_roc_auc_drop: float = Field(ge=0, le=1)
    min_labelled: int = Field(ge=1)
    # A feature whose PSI is above this is named "severe" in the summary; the alert rule
    # DataDriftDetected fires on the same figure (a test keeps the two equal).
    severe_psi: float = Field(gt=0)
    retraining: RetrainingParams
    seed: int = 0

    @model_validator(mode="after")
    def _check_rows(self) -> MonitoringParams:
        if self.max_rows < self.min_rows:
            raise ValueError(f"max_rows ({self.max_rows}) must be >= min_rows ({self.min_rows})")
        return self


class Params(_Frozen):
    """All of params.yaml."""

    data: DataParams
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams
    export: ExportParams
    gates: GateParams
    monitoring: MonitoringParams

    @model_validator(mode="after")
    def _check_columns(self) -> Params:
        schema = self.data.schema
        if self.split.method == "time" and schema.event_time is None:
            raise ValueError(
                "split.method: 'time' needs data.schema.event_time; without event times "
                "use 'hash' (stable when rows are appended) or 'stratified'"
            )
        known = {*schema.features, *([schema.event_time] if schema.event_time else [])}
        unknown = [c for c in self.split.key_columns if c not in known]
        if unknown:
            raise ValueError(f"split.key_columns: {unknown} are not schema columns")
        groups = self.evaluate.groups
        unknown = [c for c in groups.columns if c not in schema.features]
        if unknown:
            raise ValueError(f"evaluate.groups.columns: {unknown} are not feature columns")
        for column in groups.columns:
            numeric = schema.columns[column].dtype != "category"
            if numeric and column not in groups.bands:
                raise ValueError(
                    f"evaluate.groups.bands.{column}: numeric group column needs band edges"
                )
            if not numeric and column in groups.bands:
                raise ValueError(f"evaluate.groups.bands.{column}: bands apply to numeric columns")
        return self


def format_errors(path: Path, error: ValidationError) -> str:
    """One line per broken rule: the file, then `key: message (got value)`."""
    lines = [f"{path}: {error.error_count()} invalid setting(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<top level>"
        value = item.get("input")
        shown = "" if item["type"] == "missing" else f" (got {value!r})"
        lines.append(f"  {key}: {item['msg']}{shown}")
    return "\n".join(lines)


def parse_params(raw: object, source: Path = DEFAULT_PARAMS_PATH) -> Params:
    """Validate an already-parsed params mapping.

    Args:
        raw: The YAML document as Python objects.
        source: Where it came from, for error messages.

    Returns:
        The frozen, validated parameters.

    Raises:
        ParamsError: When a key is unknown or missing or a value breaks a rule.
    """
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(format_errors(source, error)) from None


def load_params(path: Path | str = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate params.yaml.

    Args:
        path: The params file.

    Returns:
        The frozen, validated parameters.

    Raises:
        ParamsError: When the file is missing, is not YAML, or breaks a rule.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParamsError(f"{path}: cannot read params file ({error.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    return parse_params(raw, path)
