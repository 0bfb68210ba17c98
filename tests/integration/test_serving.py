"""A real `bentoml serve` of the model the pipeline exported, in a temporary copy of the repo."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bentos.prediction_log import read_feedback, read_predictions
from scripts.cd.checks import check, request, served
from scripts.cd.processes import free_port
from tests.helpers import Repo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Server:
    url: str
    repo: Repo
    log_dir: Path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, trained_copy: Callable[[Path], Repo]
) -> Iterator[Server]:
    """``bentoml serve`` of the model in the module's own copy of the trained project."""
    repo = trained_copy(tmp_path_factory.mktemp("serving") / "repo")
    log_dir = repo.path / "logs"
    env = repo.env(GITOPS_ML_VARIANT="challenger", GITOPS_ML_LOG_DIR=str(log_dir))
    with served("bentos.service:CreditRiskService", free_port(), env=env, cwd=repo.path) as url:
        yield Server(url, repo, log_dir)


def post(server: Server, route: str, payload: object) -> tuple[int, object]:
    status, body = request(f"{server.url}{route}", payload)
    return status, json.loads(body) if body.startswith(("{", "[")) else body


def test_every_series_exists_at_zero_before_the_first_request(server: Server):
    # First in this module: nothing has been requested yet. Without the series a variant
    # that gets no traffic has nothing for LowPredictionVolume to fire on.
    status, text = request(f"{server.url}/metrics")
    assert status == 200
    values = {
        (line.split("{")[0], re.search(r'predicted_class="(\d)"', line)): float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(("credit_risk_predictions_total{", "credit_risk_feedback"))
        and 'variant="challenger"' in line
    }
    assert sorted((name, match and match[1], value) for (name, match), value in values.items()) == [
        ("credit_risk_feedback_correct_total", None, 0.0),
        ("credit_risk_feedback_total", None, 0.0),
        ("credit_risk_predictions_total", "0", 0.0),
        ("credit_risk_predictions_total", "1", 0.0),
    ]
    counts = [
        line for line in text.splitlines() if line.startswith("credit_risk_confidence_count{")
    ]
    assert len(counts) == 1, counts
    assert counts[0].endswith(" 0.0"), counts


def test_smoke_checks_pass(server: Server):
    passed = check(server.url)
    assert "metrics labels" in passed
    assert "bad request rejected" in passed


def test_service_answers_exactly_what_evaluate_scored(server: Server):
    test = pd.read_parquet(server.repo.path / "data/split/test.parquet")
    expected = pd.read_parquet(server.repo.path / "reports/predictions.parquet")["probability"]
    features = json.loads((server.repo.path / "models/serving.json").read_text())["features"]
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in test[features].astype(object).to_dict(orient="records")
    ]
    status, body = post(server, "/predict", {"records": records})
    assert status == 200
    served_probability = np.array([item["probability"] for item in body["predictions"]])
    assert np.abs(served_probability - expected.to_numpy()).max() <= 1e-5


def test_batch_endpoint_matches_record_endpoint(server: Server):
    _, metadata = post(server, "/metadata", {})
    test = pd.read_parquet(server.repo.path / "data/split/test.parquet").head(50)
    matrix = test[metadata["batch_columns"]].copy()
    for name, categories in metadata["category_codes"].items():
        matrix[name] = matrix[name].map({c: i for i, c in enumerate(categories)})
    rows = [[None if pd.isna(v) else float(v) for v in row] for row in matrix.to_numpy()]
    status, batch = post(server, "/predict_batch", {"rows": rows})
    assert status == 200
    expected = pd.read_parquet(server.repo.path / "reports/predictions.parquet")["probability"]
    assert np.abs(np.array(batch) - expected.head(50).to_numpy()).max() <= 1e-5


def test_metrics_carry_custom_series_with_version_and_variant(server: Server):
    _, body = post(server, "/predict", {"records": [example(server)]})
    (prediction,) = body["predictions"]
    post(server, "/feedback", {"request_id": prediction["request_id"], "label": 1})
    status, text = request(f"{server.url}/metrics")
    assert status == 200
    version = prediction["model_version"]
    for series in (
        "credit_risk_predictions_total",
        "credit_risk_probability_bucket",
        "credit_risk_confidence_bucket",
        "credit_risk_feedback_total",
        "credit_risk_feedback_correct_total",
    ):
        lines = [line for line in text.splitlines() if line.startswith(series + "{")]
        assert lines, series
        assert all(f'model_version="{version}"' in line for line in lines)
        assert all('variant="challenger"' in line for line in lines)
    # BentoML's own series, which the alert rules and the dashboard use.
    for series in (
        "bentoml_service_request_total{",
        "bentoml_service_request_duration_seconds_bucket{",
    ):
        assert any(
            line.startswith(series) and 'endpoint="/predict"' in line for line in text.splitlines()
        )


def test_monitor_logs_hold_every_prediction_and_feedback(server: Server):
    before = len(read_predictions(server.log_dir))
    post(server, "/predict", {"records": [example(server)] * 25})
    _, body = post(server, "/predict", {"records": [example(server)]})
    (prediction,) = body["predictions"]
    post(server, "/feedback", {"request_id": prediction["request_id"], "label": 0})
    predictions = read_predictions(server.log_dir)
    assert len(predictions) == before + 26
    assert prediction["request_id"] in set(predictions["prediction_id"])
    feedback = read_feedback(server.log_dir)
    assert prediction["request_id"] in set(feedback["prediction_id"])


def test_monitor_logs_lose_nothing_under_concurrent_load(server: Server):
    before = len(read_predictions(server.log_dir))
    payload = {"records": [example(server)] * 5}
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: post(server, "/predict", payload)[0], range(200)))
    assert statuses == [200] * 200
    assert len(read_predictions(server.log_dir)) == before + 1_000


MALFORMED: list[tuple[str, bytes]] = [
    ("/predict", b"{not json"),
    ("/predict", b""),
    ("/predict", b'{"records": "abc"}'),
    ("/predict", b'{"records": []}'),
    ("/predict", b'{"records": [{}]}'),
    ("/predict", b'{"records": [{"age": NaN}]}'),
    ("/predict", b'{"records": [{"age": Infinity}]}'),
    ("/predict", b'{"records": [null]}'),
    ("/predict", b"[1, 2, 3]"),
    ("/predict_batch", b'{"rows": [[1, 2]]}'),
    ("/predict_batch", b'{"rows": "x"}'),
    ("/predict_batch", b'{"rows": []}'),
    ("/predict_batch", b'{"rows": [[35, 1e40, 700, 1, 36, 0, 0, 1]]}'),
    ("/feedback", b'{"request_id": 5, "label": 1}'),
    ("/feedback", b'{"label": 1}'),
]


@pytest.mark.parametrize(("route", "body"), MALFORMED)
def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(server: Server, route, body):
    raw = urllib.request.Request(
        f"{server.url}{route}", data=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as rejected:
        urllib.request.urlopen(raw, timeout=10)
    rejected.value.close()
    assert 400 <= rejected.value.code < 500, (route, body, rejected.value.code)
    assert request(f"{server.url}/readyz")[0] == 200


def test_oversized_payload_is_rejected(server: Server):
    status, body = post(server, "/predict", {"records": [example(server)] * 1_001})
    assert status == 400
    assert "at most 1000 items" in json.dumps(body)


def test_schemathesis_finds_no_server_error(server: Server):
    result = subprocess.run(
        [
            *("schemathesis", "run", f"{server.url}/docs.json", "--checks", "not_a_server_error"),
            *("--max-examples", "300", "--seed", "1", "--phases", "examples,coverage,fuzzing"),
            "--exclude-path-regex",
            "^/(metrics|livez|readyz|healthz)$",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=server.repo.env(),
        cwd=server.repo.path,  # schemathesis writes a cache directory where it runs
    )
    assert result.returncode == 0, result.stdout[-4000:]
    cases = re.search(r"(\d+) generated", result.stdout)
    assert cases, result.stdout[-2000:]
    assert int(cases.group(1)) >= 500, result.stdout[-1500:]


def example(server: Server) -> dict[str, object]:
    features = json.loads((server.repo.path / "models/serving.json").read_text())["features"]
    test = pd.read_parquet(server.repo.path / "data/split/test.parquet")
    row = test[features].dropna().iloc[0].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
