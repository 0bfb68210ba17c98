"""Preprocessing, defined once: both model families (and the exported ONNX graph) use it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.params import SchemaParams


def build_preprocessor(schema: SchemaParams, *, scale: bool = True) -> ColumnTransformer:
    """Median-impute (and optionally standardise) numeric columns; one-hot encode categories.

    The categories come from the schema, not from the data, so the encoded width is the
    same whatever the sample, and a category unseen in training still has a column.

    Args:
        schema: The ``data.schema`` section of params.yaml.
        scale: Standardise numerics. Tree ensembles are invariant to it and leave it out:
            their split thresholds then see the raw values, which ONNX Runtime reproduces
            exactly in float32, where a float32 re-computation of the scaling would move
            values across thresholds.

    Returns:
        An unfitted transformer producing a dense float matrix.
    """
    steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        steps.append(("scale", StandardScaler()))
    numeric = Pipeline(steps)
    categories = [
        list(schema.columns[name].categories or ()) for name in schema.categorical_features
    ]
    categorical = OneHotEncoder(
        categories=categories, handle_unknown="ignore", sparse_output=False, dtype=np.float64
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, schema.numeric_features),
            ("categorical", categorical, schema.categorical_features),
        ],
        sparse_threshold=0.0,
    )


def feature_frame(frame: pd.DataFrame, schema: SchemaParams) -> pd.DataFrame:
    """The model's input: the feature columns in schema order, numerics as float64.

    Args:
        frame: A validated table.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The feature columns only.
    """
    features = frame[schema.features].copy()
    for name in schema.numeric_features:
        features[name] = features[name].astype(np.float64)
    return features


def target_array(frame: pd.DataFrame, schema: SchemaParams) -> np.ndarray:
    """The binary target as an int64 array.

    Args:
        frame: A validated table.
        schema: The ``data.schema`` section of params.yaml.

    Returns:
        The labels.
    """
    return frame[schema.target].to_numpy(dtype=np.int64)
