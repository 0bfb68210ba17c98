"""Request models derived from the input schema the model was trained with.

The schema comes from the serving spec that the export stage wrote next to the model
(``models/serving.json``), so the service validates exactly what the pipeline validated:
dtypes, ranges, categories, nullability. Unknown fields, NaN and infinities are refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

MAX_RECORDS = 1_000
# The model computes in float32: larger magnitudes would overflow to infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _field_type(spec: dict[str, Any]) -> Any:
    low = spec.get("min") if spec.get("min") is not None else -FLOAT32_MAX
    high = spec.get("max") if spec.get("max") is not None else FLOAT32_MAX
    if spec["dtype"] == "category":
        return Literal[tuple(spec["categories"])]
    if spec["dtype"] == "int":
        # strict: "35" and 35.5 are refused rather than coerced.
        return Annotated[int, Field(strict=True, ge=low, le=high)]
    return Annotated[float, Field(allow_inf_nan=False, ge=low, le=high)]


def record_model(schema: dict[str, Any]) -> type[BaseModel]:
    """Build the pydantic model of one input record.

    Args:
        schema: ``data.schema`` as stored in the serving spec.

    Returns:
        A model with one field per feature; nullable features may be null or absent.
    """
    fields: dict[str, Any] = {}
    for name, spec in schema["columns"].items():
        kind = _field_type(spec)
        fields[name] = (kind | None, None) if spec.get("nullable") else (kind, ...)
    config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    model: type[BaseModel] = create_model("LoanApplication", __config__=config, **fields)
    return model


class RowCheck:
    """Validates rows of the batch endpoint's float32 matrix, column by column.

    Numeric columns hold their value (NaN only where the schema allows missing values);
    category columns hold the index of the category in the schema's list.

    Args:
        schema: ``data.schema`` as stored in the serving spec.
        features: Column order of the matrix (numeric features first).
    """

    def __init__(self, schema: dict[str, Any], features: list[str]) -> None:
        self.schema = schema
        self.features = features

    def parse(self, value: Any) -> Any:
        """Before numpy sees the input: a list of rows of numbers (or null) within float32.

        numpy would raise TypeError on objects such as dicts (a server error) and warn
        about overflow on huge numbers; this names the rule instead.

        Raises:
            ValueError: Naming the column (or ``rows``) and the rule.
        """
        if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
            raise ValueError("rows: expected a list of rows, each a list of numbers")
        for row in value:
            for index, item in enumerate(row):
                name = self.features[index] if index < len(self.features) else "rows"
                if item is None:
                    continue
                if isinstance(item, bool) or not isinstance(item, int | float):
                    raise ValueError(
                        f"{name}: expected a number or null, got {type(item).__name__}"
                    )
                if abs(item) > FLOAT32_MAX:
                    raise ValueError(
                        f"{name}: must be finite in float32 (|x| <= 3.4e38), got {item}"
                    )
        return value

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Return the rows unchanged, or raise ValueError naming column, rule and rows."""
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise ValueError(
                f"rows: expected shape [n, {len(self.features)}] in the order of "
                f"/metadata 'batch_columns', got {list(rows.shape)}"
            )
        if len(rows) == 0:
            raise ValueError("rows: expected at least one row, got 0")
        for index, name in enumerate(self.features):
            spec = self.schema["columns"][name]
            column = rows[:, index]
            missing = np.isnan(column)
            self._check(name, np.isinf(column), "must be finite")
            if not spec.get("nullable"):
                self._check(name, missing, "missing values are not allowed")
            present = column[~missing]
            if spec["dtype"] == "category":
                n = len(spec["categories"])
                bad = (present != np.round(present)) | (present < 0) | (present >= n)
                self._check(name, bad, f"expected a category index 0..{n - 1}")
                continue
            if spec.get("min") is not None:
                self._check(name, present < spec["min"], f"expected a value >= {spec['min']}")
            if spec.get("max") is not None:
                self._check(name, present > spec["max"], f"expected a value <= {spec['max']}")
            if spec["dtype"] == "int":
                self._check(name, present != np.round(present), "expected whole numbers")
        return rows

    @staticmethod
    def _check(name: str, broken: np.ndarray, rule: str) -> None:
        count = int(np.count_nonzero(broken))
        if count:
            raise ValueError(f"{name}: {rule}: {count} row(s)")
