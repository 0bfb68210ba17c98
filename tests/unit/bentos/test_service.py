"""The service's logic through its ASGI app (no server process), on a model trained here."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from bentos.prediction_log import SYNTHETIC_HEADER, read_feedback, read_predictions
from monitoring.drift import load_window
from pipeline.export import main as export_main
from pipeline.io import write_json, write_table
from pipeline.metrics import score
from pipeline.params import load_params
from pipeline.train import train
from tests.helpers import REPO_ROOT, make_credit_frame, make_params

RECORD = {
    "age": 35,
    "income": 42_000.0,
    "credit_score": 700.0,
    "loan_amount": 10_000.0,
    "tenure_months": 36,
    "n_late_payments": 0,
    "region": "north",
    "product_type": "auto",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    import joblib

    work = tmp_path_factory.mktemp("service")
    params = make_params(**{"train.sklearn.n_estimators": 20})
    train_frame, test_frame = make_credit_frame(800, seed=1), make_credit_frame(200, seed=2)
    model = train(train_frame, train_frame, params)
    joblib.dump(model, work / "model.joblib")
    write_table(train_frame, work / "train.parquet")
    write_table(test_frame, work / "test.parquet")
    probability = model.predict_proba(test_frame[params.data.schema.features])[:, 1]
    scores = score(test_frame["default"].to_numpy(), probability, 0.5).to_json()
    write_json(
        {"model": scores, "baseline": scores, "n_test": 200, "threshold": 0.5}, work / "m.json"
    )
    code = export_main(
        [
            *("--model", str(work / "model.joblib"), "--train", str(work / "train.parquet")),
            *("--test", str(work / "test.parquet"), "--metrics", str(work / "m.json")),
            *("--onnx", str(work / "model.onnx"), "--spec", str(work / "serving.json")),
            *("--card", str(work / "model_card.md")),
        ]
    )
    assert code == 0
    mp = pytest.MonkeyPatch()
    mp.setenv("GITOPS_ML_SERVING_SPEC", str(work / "serving.json"))
    mp.setenv("GITOPS_ML_VARIANT", "challenger")
    mp.setenv("GITOPS_ML_LOG_DIR", str(work / "logs"))
    # Imported here, once: the module reads the spec named by the environment at import.
    service = importlib.import_module("bentos.service")
    with TestClient(service.CreditRiskService.to_asgi()) as test_client:
        yield test_client
    mp.undo()


def post(
    client: TestClient, route: str, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    response = client.post(route, json=payload, headers=headers)
    return response.status_code, response.json()


def test_predict_returns_class_probability_version_variant_and_request_id(client):
    status, body = post(client, "/predict", {"records": [RECORD, {**RECORD, "income": None}]})
    assert status == 200
    predictions = body["predictions"]
    assert len(predictions) == 2
    first = predictions[0]
    assert first["variant"] == "challenger"
    assert 0 < first["probability"] < 1
    assert first["predicted_class"] == int(first["probability"] >= 0.5)
    assert first["request_id"].endswith(f"-{first['predicted_class']}")
    assert first["request_id"] != predictions[1]["request_id"]


def test_feedback_scores_against_the_prediction_in_the_request_id(client):
    _, body = post(client, "/predict", {"records": [RECORD]})
    (prediction,) = body["predictions"]
    wrong = 1 - prediction["predicted_class"]
    status, receipt = post(
        client, "/feedback", {"request_id": prediction["request_id"], "label": wrong}
    )
    assert status == 200
    assert receipt == {"request_id": prediction["request_id"], "label": wrong, "correct": False}


def test_metadata_describes_the_pinned_model(client):
    status, body = post(client, "/metadata", {})
    assert status == 200
    assert body["tag"].startswith("credit-risk:")
    assert body["variant"] == "challenger"
    assert body["batch_columns"][-2:] == ["region", "product_type"]
    assert body["category_codes"]["region"][0] == "north"


def test_batch_endpoint_takes_category_codes(client):
    _, body = post(client, "/predict", {"records": [RECORD]})
    (record,) = body["predictions"]
    row = [35, 42_000, 700, 10_000, 36, 0, 0, 1]  # north, auto
    status, body = post(client, "/predict_batch", {"rows": [row, row]})
    assert status == 200
    assert body == pytest.approx([record["probability"]] * 2, abs=1e-6)


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"records": [{**RECORD, "age": "abc"}]}, "age", "valid integer"),
        ({"records": [{**RECORD, "age": 12}]}, "age", "greater than or equal to 18"),
        ({"records": [{**RECORD, "region": "atlantis"}]}, "region", "Input should be 'north'"),
        ({"records": [{**RECORD, "shoe_size": 42}]}, "shoe_size", "Extra inputs are not permitted"),
        ({"records": [{k: v for k, v in RECORD.items() if k != "age"}]}, "age", "Field required"),
        ({"records": []}, "records", "at least 1 item"),
        ({"records": [RECORD] * 1_001}, "records", "at most 1000 items"),
        ({"records": [{**RECORD, "income": 1e300}]}, "income", "less than or equal to"),
        ({"rows": [[35, 42_000, 700, 10_000, 36, 0, 9, 1]]}, "region", "category index 0..4"),
        ({"rows": [[35, 1e40, 700, 10_000, 36, 0, 0, 1]]}, "income", "must be finite in float32"),
        ({"rows": {}}, "rows", "expected a list of rows"),
        ({"rows": [[{}, 1, 1, 1, 1, 1, 1, 1]]}, "age", "expected a number or null, got dict"),
        ({"request_id": "abc", "label": 1}, "request_id", "should match pattern"),
        ({"request_id": "0" * 32 + "-1", "label": 3}, "label", "Input should be 0 or 1"),
    ],
)
def test_bad_input_is_a_400_naming_field_and_rule(client, payload, field, rule):
    route = (
        "/predict_batch" if "rows" in payload else "/feedback" if "label" in payload else "/predict"
    )
    status, body = post(client, route, payload)
    assert status == 400
    text = json.dumps(body)
    assert field in text
    assert rule in text


def test_nan_and_malformed_json_are_rejected(client):
    for raw in (b'{"records": [{"age": NaN}]}', b'{"records": [', b"not json"):
        response = client.post(
            "/predict", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, raw
    nan_income = json.dumps({"records": [{**RECORD, "income": float("nan")}]}).encode()
    response = client.post(
        "/predict", content=nan_income, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "income" in response.text


def test_monitor_logs_are_written_and_read_back(client):
    log_dir = Path(os.environ["GITOPS_ML_LOG_DIR"])  # set by the client fixture
    post(client, "/predict", {"records": [RECORD] * 3})
    predictions = read_predictions(log_dir)
    assert len(predictions) >= 3
    assert {"age", "region", "prediction", "probability", "prediction_id", "variant"} <= set(
        predictions
    )
    assert set(predictions["variant"]) == {"challenger"}
    assert predictions["timestamp"].is_monotonic_increasing
    assert len(read_feedback(log_dir)) >= 1


def test_non_json_content_type_is_a_415(client):
    response = client.post(
        "/predict", content=b'{"records": []}', headers={"content-type": "multipart/form-data"}
    )
    assert response.status_code == 415
    assert "expected application/json, got 'multipart/form-data'" in response.text


def test_the_drift_job_window_joins_feedback_from_the_logs(client):
    log_dir = Path(os.environ["GITOPS_ML_LOG_DIR"])  # set by the client fixture
    start = dt.datetime.now()
    (first,) = post(client, "/predict", {"records": [RECORD]})[1]["predictions"]
    (second,) = post(client, "/predict", {"records": [RECORD]})[1]["predictions"]
    end = dt.datetime.now()
    post(client, "/feedback", {"request_id": first["request_id"], "label": 1})
    schema = load_params(REPO_ROOT / "params.yaml").data.schema
    window = load_window([str(log_dir)], start, end, schema).frame
    assert set(window["prediction_id"]) == {first["request_id"], second["request_id"]}
    labels = dict(zip(window["prediction_id"], window[schema.target], strict=True))
    assert labels[first["request_id"]] == 1
    assert pd.isna(labels[second["request_id"]])
    assert schema.event_time in window


def test_a_synthetic_request_is_served_logged_with_its_source_and_left_out_of_the_window(
    client,
):
    log_dir = Path(os.environ["GITOPS_ML_LOG_DIR"])  # set by the client fixture
    smoke = {SYNTHETIC_HEADER: "smoke"}
    start = dt.datetime.now()
    # A value that names no tool marks nothing (a client cannot opt out of the windows
    # with any text it likes, nor put that text in a summary).
    forged = {SYNTHETIC_HEADER: "[x](https://evil.invalid) @team"}
    (customer,) = post(client, "/predict", {"records": [RECORD]}, forged)[1]["predictions"]
    status, body = post(client, "/predict", {"records": [RECORD, RECORD]}, smoke)
    end = dt.datetime.now()
    assert status == 200
    marked = [prediction["request_id"] for prediction in body["predictions"]]
    post(client, "/feedback", {"request_id": customer["request_id"], "label": 0})
    status, _ = post(client, "/feedback", {"request_id": marked[0], "label": 1}, smoke)
    assert status == 200

    predictions = read_predictions(log_dir, start).set_index("prediction_id")
    assert predictions["synthetic"].to_dict() == pytest.approx(
        {customer["request_id"]: np.nan, marked[0]: "smoke", marked[1]: "smoke"}, nan_ok=True
    )
    feedback = read_feedback(log_dir, start).set_index("prediction_id")
    assert feedback["synthetic"].to_dict() == pytest.approx(
        {customer["request_id"]: np.nan, marked[0]: "smoke"}, nan_ok=True
    )
    schema = load_params(REPO_ROOT / "params.yaml").data.schema
    window = load_window([str(log_dir)], start, end, schema)
    assert window.frame["prediction_id"].tolist() == [customer["request_id"]]
    assert window.frame[schema.target].tolist() == [0]
    assert window.synthetic == {"smoke": 2}
