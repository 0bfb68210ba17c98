"""The data contract: what the validate stage accepts and how it reports what it rejects."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import validate
from pipeline.schema import build_schema, cast_frame, coerce_frame, validate_frame
from tests.helpers import make_credit_frame, make_params

SCHEMA = make_params().data.schema


def messages(frame: pd.DataFrame) -> list[str]:
    report, valid = validate_frame(frame, SCHEMA)
    assert not report.passed
    assert valid is None
    return [problem.message() for problem in report.problems]


def test_generated_data_passes_and_is_coerced_to_declared_dtypes():
    report, valid = validate_frame(make_credit_frame(500), SCHEMA)
    assert report.passed
    assert report.problems == ()
    assert valid is not None
    assert valid["age"].dtype == np.int64
    assert valid["income"].dtype == np.float64
    assert str(valid["event_time"].dtype) == "datetime64[ns]"


def test_each_broken_rule_names_column_rule_and_row_count():
    frame = make_credit_frame(500).astype({"income": object})
    frame.loc[3, "income"] = "abc"
    frame.loc[[5, 6], "age"] = -5
    frame.loc[[7, 8, 9], "region"] = "atlantis"
    frame = frame.drop(columns=["credit_score"]).assign(shoe_size=42)
    assert messages(frame) == [
        "age: expected a value >= 18.0: 2 row(s) (e.g. '-5')",
        "credit_score: required column is missing",
        "income: expected float values: 1 row(s) (e.g. 'abc')",
        "region: expected one of north, south, east, west, centre: 3 row(s) (e.g. 'atlantis')",
        "shoe_size: column is not declared in params.yaml data.schema.columns",
    ]


def test_missing_value_budget_and_non_nullable_columns():
    frame = make_credit_frame(500, missing_rate=0)
    frame.loc[:99, "loan_amount"] = np.nan
    frame["tenure_months"] = frame["tenure_months"].astype(float)
    frame.loc[0, "tenure_months"] = np.nan
    found = messages(frame)
    assert "loan_amount: at most 5.0% of values may be missing, got 20.0%: 100 row(s)" in found
    assert "tenure_months: missing values are not allowed: 1 row(s)" in found


def test_duplicated_rows_are_counted_once_for_the_table():
    frame = make_credit_frame(300)
    frame = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)
    assert messages(frame) == [
        "<table>: duplicated rows are not allowed (data.schema.allow_duplicates is false): 4 row(s)"
    ]


def test_target_must_be_binary():
    frame = make_credit_frame(300)
    frame.loc[0, "default"] = 2
    assert messages(frame) == ["default: expected one of 0, 1: 1 row(s) (e.g. '2')"]


def test_coerce_frame_raises_with_every_problem():
    frame = make_credit_frame(100)
    frame.loc[0, "age"] = 200
    with pytest.raises(ValueError, match=r"age: expected a value <= 100.0: 1 row"):
        coerce_frame(frame, SCHEMA)


def test_schema_is_strict_and_coercing():
    schema = build_schema(SCHEMA)
    assert schema.strict is True
    assert set(schema.columns) == {*SCHEMA.columns, "default", "event_time"}


def test_validate_stage_writes_report_and_exits_1_on_bad_csv(tmp_path, capsys):
    frame = make_credit_frame(300)
    frame.loc[4, "age"] = -5
    data = tmp_path / "raw.csv"
    frame.to_csv(data, index=False)
    report = tmp_path / "validation.json"
    code = validate.main(["--data", str(data), "--report", str(report)])
    assert code == 1
    assert "age: expected a value >= 18.0: 1 row(s)" in capsys.readouterr().err
    written = json.loads(report.read_text())
    assert written["passed"] is False
    assert written["problems"][0]["column"] == "age"
    assert written["problems"][0]["rows"] == 1
    with pytest.raises(ValueError, match="data validation failed"):
        validate.require_passed(report, data, SCHEMA)


def test_a_passing_report_only_covers_the_file_it_checked(tmp_path):
    data = tmp_path / "raw.parquet"
    make_credit_frame(300).to_parquet(data)
    report = tmp_path / "validation.json"
    assert validate.main(["--data", str(data), "--report", str(report)]) == 0
    validate.require_passed(report, data, SCHEMA)
    other_schema = SCHEMA.model_copy(update={"max_missing_fraction": 0.5})
    with pytest.raises(ValueError, match=r"another data\.schema"):
        validate.require_passed(report, data, other_schema)
    make_credit_frame(300, seed=1).to_parquet(data)
    with pytest.raises(ValueError, match="was written for other data"):
        validate.require_passed(report, data, SCHEMA)


def test_cast_frame_matches_what_validation_coerces():
    frame = make_credit_frame(300)
    raw = frame.astype({"age": float, "event_time": str})
    pd.testing.assert_frame_equal(cast_frame(raw, SCHEMA), coerce_frame(frame, SCHEMA))
