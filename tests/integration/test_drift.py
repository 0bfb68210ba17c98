"""The drift job on generated windows: false alarms, covariate, prior and concept drift."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from monitoring import drift
from pipeline.exit_codes import ExitCode
from pipeline.generate import Window, generate
from pipeline.onnx_model import OnnxClassifier, feeds_from_frame
from pipeline.params import load_params
from scripts.cd.checks import request, wait_ready
from scripts.cd.processes import free_port
from tests.helpers import Repo, make_repo

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    # Enough test rows (1,800) for the reference of the prediction-drift test.
    repo = make_repo(tmp_path_factory.mktemp("drift") / "repo", {"data.generator.n_rows": 6000})
    repo.run("dvc", "repro")
    return repo


def window(repo: Repo, kind: str, rows: int, seed: int, labelled: bool) -> pd.DataFrame:
    """A production window scored by the trained model, as the service would log it."""
    params = load_params(repo.path / "params.yaml")
    frame = generate(rows, seed, Window(drift=kind))  # type: ignore[arg-type]
    model = OnnxClassifier(repo.path / "models" / "model.onnx")
    probability = model.predict_proba(feeds_from_frame(frame, params.data.schema))
    frame["probability"] = probability
    frame["prediction"] = (probability >= params.evaluate.threshold).astype(np.int64)
    return frame if labelled else frame.drop(columns=[params.data.schema.target])


def judge(repo: Repo, frame: pd.DataFrame, out: Path, *extra: str) -> tuple[int, dict[str, object]]:
    out.mkdir(parents=True, exist_ok=True)
    current = out / "window.parquet"
    frame.to_parquet(current)
    code = drift.main(
        [
            "--current",
            str(current),
            "--params",
            str(repo.path / "params.yaml"),
            "--reference",
            str(repo.path / "data/split/train.parquet"),
            "--reference-predictions",
            str(repo.path / "reports/predictions.parquet"),
            "--metrics",
            str(repo.path / "metrics.json"),
            "--out-dir",
            str(out),
            *extra,
        ]
    )
    summary = (
        json.loads((out / "summary.json").read_text()) if code != ExitCode.NOT_EVALUATED else {}
    )
    return code, summary


def test_same_distribution_rarely_alarms(trained: Repo, tmp_path: Path) -> None:
    alarms = 0
    for seed in range(20):
        code, _ = judge(
            trained, window(trained, "none", 1000, 100 + seed, False), tmp_path / str(seed)
        )
        assert code in (ExitCode.OK, ExitCode.FOUND_PROBLEM)
        alarms += code == ExitCode.FOUND_PROBLEM
    assert alarms <= 2  # at most 10 % of 20 windows


def test_young_clients_drift_on_age_not_on_untouched_columns(trained: Repo, tmp_path: Path) -> None:
    code, summary = judge(trained, window(trained, "covariate", 1000, 7, False), tmp_path)
    assert code == ExitCode.FOUND_PROBLEM
    columns = summary["columns"]
    assert isinstance(columns, dict)
    assert columns["age"]["drifted"] is True
    assert columns["region"]["drifted"] is False
    assert columns["product_type"]["drifted"] is False
    assert columns["age"]["method"] == "psi"
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(html) > 100_000  # self-contained
    assert (
        'credit_risk_feature_drift_score{feature="age"' in (tmp_path / "metrics.prom").read_text()
    )


def test_prior_shift_is_seen_in_the_predictions(trained: Repo, tmp_path: Path) -> None:
    code, summary = judge(trained, window(trained, "prior", 2000, 8, False), tmp_path)
    assert code == ExitCode.FOUND_PROBLEM
    prediction = summary["prediction"]
    assert isinstance(prediction, dict)
    assert prediction["drifted"] is True


def test_concept_drift_shows_as_an_accuracy_drop_not_covariate_drift(
    trained: Repo, tmp_path: Path
) -> None:
    code, summary = judge(trained, window(trained, "concept", 1000, 9, True), tmp_path)
    dataset, performance = summary["dataset"], summary["performance"]
    assert isinstance(dataset, dict)
    assert isinstance(performance, dict)
    assert dataset["drifted"] is False
    assert performance["degraded"] is True
    assert code == ExitCode.FOUND_PROBLEM
    assert summary["reasons"] == ["performance drop"]


def test_a_tiny_window_gets_no_verdict(
    trained: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = judge(trained, window(trained, "covariate", 100, 3, False), tmp_path)
    assert code == ExitCode.NOT_EVALUATED
    assert "fewer than monitoring.min_rows=500" in capsys.readouterr().err


def test_scores_reach_a_real_pushgateway(trained: Repo, tmp_path: Path) -> None:
    port = free_port()
    pushgateway = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", path="/-/ready")
        frame = window(trained, "covariate", 1000, 7, False)
        code, _ = judge(trained, frame, tmp_path, "--pushgateway", f"127.0.0.1:{port}")
        assert code == ExitCode.FOUND_PROBLEM
        _, text = request(f"http://127.0.0.1:{port}/metrics")
        lines = [
            line
            for line in text.splitlines()
            if line.startswith("credit_risk_feature_drift_score{")
        ]
        age = [line for line in lines if 'feature="age"' in line]
        assert age
        assert 'job="credit_risk_drift"' in age[0]
        assert float(age[0].rsplit(" ", 1)[1]) > 0.2
    finally:
        pushgateway.terminate()
        pushgateway.wait(timeout=10)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def firing(url: str, alertname: str = "DataDriftDetected") -> list[dict[str, Any]]:
    """Prometheus's firing ``alertname`` alerts."""
    _, text = request(f"{url}/api/v1/alerts")
    alerts = json.loads(text)["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def test_a_drifted_window_fires_the_alert_through_to_a_retraining_dispatch(
    trained: Repo, tmp_path: Path
) -> None:
    # The real stack as the local driver runs it: drift job -> Pushgateway -> Prometheus
    # (rules.yml, `for:` shortened to 2 s) -> Alertmanager -> relay -> GitHub (stand-in).
    # The relay's token first holds Contents only: GitHub refuses it, Prometheus (scraping
    # the relay) says so; a token with Actions: write in the file, the retry dispatches.
    from scripts.cd import alerting, prometheus
    from scripts.cd.supervisor import Supervisor
    from scripts.dev.harness.github.api import github_api, read_dispatches
    from scripts.dev.harness.github.tokens import CONTENTS_TOKEN, DISPATCH_TOKEN

    token_file = tmp_path / "dispatch-token"
    token_file.write_text(CONTENTS_TOKEN, encoding="utf-8")
    supervised = Supervisor(tmp_path / "run")
    ports = alerting.Ports(free_port(), free_port(), free_port())
    prometheus_port = free_port()
    record = tmp_path / "github"
    with github_api(record, "team/credit-risk", trained.path / ".git") as api:
        try:
            relay = alerting.RelaySettings("team/credit-risk", token_file, api)
            alerting.start(supervised, tmp_path / "alerting", ports, relay, "production", "1s")
            config = prometheus.render(
                "production", {}, "1s", ports.pushgateway, ports.alertmanager, ports.relay
            )
            rules = alerting.render_rules(alert_for="2s")
            prometheus.start_or_reload(
                supervised, prometheus_port, config, tmp_path / "prometheus", rules
            )
            prometheus_url = f"http://127.0.0.1:{prometheus_port}"
            _, text = request(f"{prometheus_url}/api/v1/rules")
            loaded = {r["name"] for g in json.loads(text)["data"]["groups"] for r in g["rules"]}
            assert "DataDriftDetected" in loaded

            code, summary = judge(
                trained,
                window(trained, "covariate", 1000, 7, False),
                tmp_path / "drift",
                "--pushgateway",
                f"127.0.0.1:{ports.pushgateway}",
            )
            assert code == ExitCode.FOUND_PROBLEM
            assert "age" in summary["severe"]["columns"]  # type: ignore[index]

            severe = ",".join(sorted(summary["severe"]["columns"]))  # type: ignore[index]
            alerts = wait_for(lambda: firing(prometheus_url), "firing DataDriftDetected")
            assert {a["labels"]["feature"] for a in alerts} == set(severe.split(","))
            (refused,) = wait_for(
                lambda: firing(prometheus_url, "RetrainingDispatchRefused"),
                "firing RetrainingDispatchRefused",
            )
            assert refused["labels"]["environment"] == "production"
            assert refused["annotations"]["summary"].endswith("in production (HTTP 403)")
            assert read_dispatches(record) == []
            token_file.write_text(DISPATCH_TOKEN, encoding="utf-8")  # Alertmanager retries
            (dispatch,) = wait_for(lambda: read_dispatches(record), "workflow dispatch")
            assert (dispatch["workflow"], dispatch["ref"]) == ("drift.yml", "main")
            assert dispatch["token"] == "fine-grained-actions"
            # A prepared window (--current) pushes no window end: the run judges the last one.
            assert dispatch["inputs"] == {}
            wait_for(
                lambda: not firing(prometheus_url, "RetrainingDispatchRefused"),
                "RetrainingDispatchRefused resolved",
            )
            _, text = request(f"http://127.0.0.1:{ports.alertmanager}/api/v2/alerts")
            features = sorted(
                a["labels"]["feature"]
                for a in json.loads(text)
                if a["labels"]["alertname"] == "DataDriftDetected"
            )
            assert features == severe.split(",")
            relay_log = (tmp_path / "alerting" / "relay.log").read_text(encoding="utf-8")
            assert "relay: dispatch refused (Alertmanager will retry): GitHub answered 403" in (
                relay_log
            )
            assert f"DataDriftDetected ({severe}): dispatched drift.yml on main" in relay_log
            assert CONTENTS_TOKEN not in relay_log
            assert DISPATCH_TOKEN not in relay_log
        finally:
            supervised.shutdown()
