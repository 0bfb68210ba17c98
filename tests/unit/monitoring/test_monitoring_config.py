"""Prometheus rules, their promtool unit tests, and the Grafana dashboard's PromQL.

promtool comes with the Debian `prometheus` package (`make system-deps`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring.drift import prometheus_text
from monitoring.relay import DispatchMetrics
from pipeline.params import load_params
from scripts.cd.alerting import render_alertmanager, render_rules
from scripts.dev.workspace import PROJECT_ROOT

MONITORING = PROJECT_ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "credit-risk.json"
# BentoML's own series (checked against a live server in tests/integration/test_serving.py).
BENTOML_SERIES = {"bentoml_service_request_total", "bentoml_service_request_duration_seconds"}
METRIC = re.compile(r"\b((?:credit_risk|bentoml|gitops_relay)_[a-z0-9_]+)")


def promtool(*args: str, cwd: Path = MONITORING / "prometheus") -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: run `make system-deps` (Debian package prometheus)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def known_series() -> set[str]:
    """Every series the service, BentoML, the drift job and the relay export (with parts)."""
    import prometheus_client

    import bentos.service  # noqa: F401  (registers the service's metrics)

    names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    summary = {
        "window": {"end": "2026-11-30T00:00:00"},
        "columns": {"age": {"score": 0.3, "method": "psi", "drifted": True}},
        "dataset": {"drift_share": 0.1},
        "features_drifted": ["age"],
        "drift": True,
        "prediction": {"score": 0.01},
        "performance": {"enough": True, "accuracy": {"window": 0.8}},
    }
    names |= {
        line.split("{")[0].split(" ")[0]
        for line in prometheus_text(summary).splitlines()
        if line and not line.startswith("#")
    }
    names |= BENTOML_SERIES
    names |= {
        line.split("{")[0].split(" ")[0]
        for line in DispatchMetrics().render().splitlines()
        if line and not line.startswith("#")
    }
    expanded = set()
    for name in names:
        expanded |= {name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return expanded


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_rules_and_config_check() -> None:
    for args in (("check", "rules", "rules.yml"), ("check", "config", "prometheus.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass_and_cover_every_alert() -> None:
    result = promtool("test", "rules", "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load((MONITORING / "prometheus" / "rules_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == set(rule_expressions())
    assert set(rule_expressions()) == {
        "HighPredictionLatency",
        "DataDriftDetected",
        "LowPredictionVolume",
        "LowModelConfidence",
        "HighErrorRate",
        "ChallengerWorseThanChampion",
        "RetrainingDispatchRefused",
    }


def test_dashboard_has_the_panels_and_its_promql_parses(tmp_path: Path) -> None:
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for needed in (
        "prediction volume",
        "class distribution",
        "p50 / p95 / p99",
        "confidence",
        "drift score per feature",
        "accuracy from feedback",
        "error rate",
        "champion vs challenger",
    ):
        assert needed in titles
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:expr{i}",
                        "expr": expr.replace("$environment", "production"),
                    }
                    for i, expr in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(recording), encoding="utf-8")
    result = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_series_in_rules_and_dashboard_is_exported() -> None:
    known = known_series()
    for expression in [*rule_expressions().values(), *dashboard_expressions()]:
        unknown = set(METRIC.findall(expression)) - known
        assert not unknown, f"{unknown} in {expression!r} is not exported"


def test_grafana_provisioning_and_kubernetes_scrape_files_parse() -> None:
    for path in [
        *(MONITORING / "grafana" / "provisioning").rglob("*.yml"),
        MONITORING / "prometheus" / "kubernetes-scrape.yml",
    ]:
        assert yaml.safe_load(path.read_text(encoding="utf-8")), path


def amtool(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("amtool") is None:
        pytest.fail("amtool not found: run `make system-deps` (Debian prometheus-alertmanager)")
    return subprocess.run(
        ["amtool", "check-config", str(path)], capture_output=True, text=True, check=False
    )


def test_alertmanager_configs_pass_amtool_and_route_retrain_alerts_to_the_relay(
    tmp_path: Path,
) -> None:
    example = MONITORING / "alertmanager" / "alertmanager.yml"
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(render_alertmanager(9095, "1s"), encoding="utf-8")
    for path in (example, rendered):
        result = amtool(path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout
    for path in (example, rendered):
        result = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={path}", "action=retrain"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.stdout.strip() == "retrain-relay", (path, result.stdout, result.stderr)
    broken = tmp_path / "broken.yml"
    broken.write_text(render_alertmanager(9095, "1s").replace("retrain-relay", "x", 1))
    assert amtool(broken).returncode != 0  # a route to an undefined receiver is refused


def test_the_refused_dispatch_alert_never_routes_to_the_relay_it_is_about(
    tmp_path: Path,
) -> None:
    rule = next(
        rule
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if rule["alert"] == "RetrainingDispatchRefused"
    )
    labels = [f"{name}={value}" for name, value in rule["labels"].items()]
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(render_alertmanager(9095, "1s"), encoding="utf-8")
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={rendered}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "alertmanager-only", (result.stdout, result.stderr)


def test_alert_thresholds_and_persistence_match_the_params() -> None:
    rule = next(
        rule
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if rule["alert"] == "DataDriftDetected"
    )
    monitoring = load_params().monitoring
    assert rule["expr"].rstrip().endswith(f"> {monitoring.severe_psi}")
    assert rule["for"] == f"{monitoring.retraining.persistence_minutes}m"
    assert rule["labels"]["action"] == "retrain"


def test_the_driver_can_shorten_every_rule_for_the_tests_and_keeps_the_rest() -> None:
    original = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    short = yaml.safe_load(render_rules(RULES, alert_for="2s"))
    fors = [rule.get("for") for group in short["groups"] for rule in group["rules"]]
    assert set(fors) == {"2s"}
    for group in (*original["groups"], *short["groups"]):
        for rule in group["rules"]:
            rule.pop("for", None)
    assert short == original
