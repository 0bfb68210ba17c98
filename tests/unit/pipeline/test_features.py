import numpy as np
import pandas as pd

from pipeline.features import build_preprocessor, feature_frame, target_array
from tests.helpers import make_credit_frame, make_params

SCHEMA = make_params().data.schema


def test_width_is_numerics_plus_declared_categories():
    frame = make_credit_frame(400)
    matrix = build_preprocessor(SCHEMA).fit_transform(feature_frame(frame, SCHEMA))
    n_categories = sum(len(SCHEMA.columns[c].categories or ()) for c in SCHEMA.categorical_features)
    assert matrix.shape == (400, len(SCHEMA.numeric_features) + n_categories)
    assert np.isfinite(matrix).all()  # missing values are imputed


def test_numerics_are_standardised_and_unknown_categories_encode_as_zeros():
    train = make_credit_frame(1_000)
    preprocess = build_preprocessor(SCHEMA).fit(feature_frame(train, SCHEMA))
    matrix = preprocess.transform(feature_frame(train, SCHEMA))
    n_numeric = len(SCHEMA.numeric_features)
    assert np.allclose(matrix[:, :n_numeric].mean(axis=0), 0, atol=1e-9)
    row = feature_frame(train.iloc[[0]], SCHEMA).assign(region="atlantis")
    encoded = preprocess.transform(row)[0, n_numeric:]
    assert encoded.sum() == 1.0  # product_type only; region has no active column


def test_feature_frame_selects_schema_columns_in_model_order():
    frame = make_credit_frame(10)
    features = feature_frame(frame, SCHEMA)
    assert list(features.columns) == SCHEMA.features
    assert features["age"].dtype == np.float64
    assert target_array(frame, SCHEMA).dtype == np.int64
    assert isinstance(features, pd.DataFrame)


def test_tree_preprocessing_keeps_raw_numerics():
    frame = make_credit_frame(300, missing_rate=0)
    matrix = build_preprocessor(SCHEMA, scale=False).fit_transform(feature_frame(frame, SCHEMA))
    assert np.array_equal(matrix[:, 0], frame["age"].to_numpy(float))
