import pytest

from pipeline.params import ParamsError, load_params, parse_params
from tests.helpers import REPO_ROOT, make_params, raw_params, set_dotted


def test_repository_params_load_with_derived_feature_lists():
    params = load_params(REPO_ROOT / "params.yaml")
    schema = params.data.schema
    assert schema.numeric_features[:2] == ["age", "income"]
    assert schema.categorical_features == ["region", "product_type"]
    assert schema.features == schema.numeric_features + schema.categorical_features
    assert params.train.torch.hidden_sizes == (64, 32)


def test_unknown_key_is_rejected_with_its_full_path():
    raw = raw_params()
    raw["train"]["sklearn"]["n_estimator"] = 10
    with pytest.raises(ParamsError, match=r"train\.sklearn\.n_estimator: Extra inputs"):
        parse_params(raw)


def test_missing_key_is_rejected_with_its_full_path():
    raw = raw_params()
    del raw["split"]["seed"]
    with pytest.raises(ParamsError, match=r"split\.seed: Field required"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "train.model",
            "xgboost",
            r"train\.model: Input should be 'sklearn' or 'torch'.*'xgboost'",
        ),
        ("split.test_fraction", 0.9, r"val_fraction \+ test_fraction must be below 1"),
        (
            "data.schema.columns.age",
            {"dtype": "int", "min": 5, "max": 1},
            r"min \(5.0\) is greater",
        ),
        ("data.schema.columns.region", {"dtype": "category"}, r"needs a non-empty 'categories'"),
        ("data.schema.target", "age", r"'age' is the target or event time"),
        ("train.torch.gpus", 0, r"train\.torch\.gpus: Input should be greater than or equal to 1"),
    ],
)
def test_invalid_values_name_the_key_and_rule(key, value, message):
    raw = raw_params()
    set_dotted(raw, key, value)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_params_are_frozen():
    params = make_params()
    with pytest.raises(ValueError, match="frozen"):
        params.train.seed = 1  # type: ignore[misc]


def test_unreadable_and_non_yaml_files_are_reported(tmp_path):
    with pytest.raises(ParamsError, match="cannot read params file"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
