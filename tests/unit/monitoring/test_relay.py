"""The retraining relay against the GitHub API stand-in (both on loopback)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring.relay import FAILED, REFUSED, Relay, handler_for, outcome_of
from scripts.cd import prometheus
from scripts.cd.checks import request
from scripts.dev.harness.github.api import check_inputs, github_api, read_dispatches
from scripts.dev.harness.github.tokens import (
    APP_TOKEN,
    CONTENTS_TOKEN,
    DISPATCH_TOKEN,
    EXPIRED_TOKEN,
    READ_ONLY_TOKEN,
)
from scripts.dev.workspace import PROJECT_ROOT

REPOSITORY = "team/credit-risk"
DRIFT_WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "drift.yml"
# drift.yml as it was before its window_end input: a dispatch with one gets GitHub's 422.
WITHOUT_INPUTS = "name: drift\non:\n  workflow_dispatch:\njobs: {}\n"


def alert(status: str = "firing", action: str = "retrain", feature: str = "age") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DataDriftDetected", "feature": feature, "action": action},
        "annotations": {"window_end": "1796000000"},
        "startsAt": "2026-11-30T10:00:00Z",
        "fingerprint": f"fp-{feature}",
    }


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": list(alerts)}


def git(repository: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repository,
        check=True,
        capture_output=True,
    )


def make_origin(root: Path) -> Path:
    """The git directory the stand-in reads workflows from: main with this project's drift.yml.

    Its branch ``old`` has a drift.yml without inputs.
    """
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    shutil.copy(DRIFT_WORKFLOW, workflows / "drift.yml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "drift.yml")
    git(root, "checkout", "-q", "-b", "old")
    (workflows / "drift.yml").write_text(WITHOUT_INPUTS, encoding="utf-8")
    git(root, "commit", "-q", "-am", "drift.yml without inputs")
    git(root, "checkout", "-q", "main")
    return root / ".git"


@dataclass
class Stack:
    """A relay (``url``) in front of the stand-in (``api``), with its files."""

    url: str
    api: str
    relay: Relay
    token_file: Path
    record: Path
    origin: Path

    def metrics(self) -> dict[str, float]:
        """The relay's /metrics as ``{name or name{outcome}: value}``."""
        status, text = request(f"{self.url}/metrics")
        assert status == 200
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                outcome = sample.labels.get("outcome")
                values[f"{sample.name}{{{outcome}}}" if outcome else sample.name] = sample.value
        return values


def serve_relay(relay: Relay) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(relay))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def post_alert(relay: Relay) -> tuple[int, str]:
    """One firing alert's webhook to ``relay``, served for that request only."""
    server, url = serve_relay(relay)
    try:
        return request(f"{url}/alerts", webhook(alert()))
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The relay with the deploy runner's token: a fine-grained one with Actions: write."""
    record, token_file = tmp_path / "record", tmp_path / "token"
    token_file.write_text(f"{DISPATCH_TOKEN}\n", encoding="utf-8")
    origin = make_origin(tmp_path / "origin")
    with github_api(record, REPOSITORY, origin) as api:
        relay = Relay(api, REPOSITORY, token_file, tmp_path / "sent.json", "production")
        server, url = serve_relay(relay)
        try:
            yield Stack(url, api, relay, token_file, record, origin)
        finally:
            server.shutdown()
            server.server_close()


def test_a_firing_retrain_alert_dispatches_drift_yml_on_main_once(stack: Stack) -> None:
    status, text = request(f"{stack.url}/alerts", webhook(alert(), alert(feature="income")))
    assert status == 200
    assert text == f"DataDriftDetected (age,income): dispatched drift.yml on main of {REPOSITORY}\n"
    # Alertmanager repeats the group (repeat_interval): no second dispatch.
    status, text = request(f"{stack.url}/alerts", webhook(alert(), alert(feature="income")))
    assert (status, text) == (200, "already dispatched\n")
    (dispatch,) = read_dispatches(stack.record)
    assert (dispatch["workflow"], dispatch["ref"]) == ("drift.yml", "main")
    assert dispatch["token"] == "fine-grained-actions"
    assert list(dispatch["inputs"]) == ["window_end"]
    assert len(dispatch["inputs"]["window_end"]) == len("2026-11-30T10:00:00")
    metrics = stack.metrics()
    assert metrics["gitops_relay_dispatches_total{dispatched}"] == 1
    assert metrics["gitops_relay_dispatches_total{refused}"] == 0
    assert metrics["gitops_relay_last_success_timestamp_seconds"] > 0
    assert metrics["gitops_relay_last_refusal_timestamp_seconds"] == 0


def test_resolved_and_other_alerts_are_not_dispatched(stack: Stack) -> None:
    status, text = request(
        f"{stack.url}/alerts", webhook(alert(status="resolved"), alert(action="page", feature="x"))
    )
    assert (status, text) == (200, "nothing to do\n")
    assert read_dispatches(stack.record) == []
    assert stack.metrics()["gitops_relay_dispatches_total{dispatched}"] == 0


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        pytest.param(EXPIRED_TOKEN, 401, "Bad credentials", id="expired"),
        pytest.param("never-issued", 401, "Bad credentials", id="unknown"),
        pytest.param(
            CONTENTS_TOKEN, 403, "Resource not accessible by personal access token", id="contents"
        ),
        # The repository's App holds Actions: read only (README, "GitHub App").
        pytest.param(APP_TOKEN, 403, "Resource not accessible by integration", id="app"),
        pytest.param(READ_ONLY_TOKEN, 403, "Resource not accessible by integration", id="fork"),
    ],
)
def test_a_refused_token_answers_502_and_sets_the_refusal_metrics(
    stack: Stack, token: str, status: int, message: str
) -> None:
    stack.token_file.write_text(token, encoding="utf-8")
    answer, text = request(f"{stack.url}/alerts", webhook(alert()))
    assert answer == 502  # Alertmanager retries a 5xx
    assert text.startswith(f"GitHub answered {status} to the dispatch of drift.yml on main: ")
    assert message in text
    assert token not in text
    assert read_dispatches(stack.record) == []
    metrics = stack.metrics()
    assert metrics["gitops_relay_dispatches_total{refused}"] == 1
    assert metrics["gitops_relay_dispatches_total{dispatched}"] == 0
    assert metrics["gitops_relay_last_refusal_status_code"] == status
    assert metrics["gitops_relay_last_refusal_timestamp_seconds"] > 0


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        pytest.param("old", 'Unexpected inputs provided: [\\"window_end\\"]', id="unknown-input"),
        pytest.param("no-such-branch", "No ref found for: no-such-branch", id="unknown-ref"),
    ],
)
def test_a_dispatch_github_cannot_run_answers_502_with_githubs_422(
    stack: Stack, tmp_path: Path, ref: str, message: str
) -> None:
    relay = Relay(
        stack.api, REPOSITORY, stack.token_file, tmp_path / "s.json", "production", ref=ref
    )
    status, text = post_alert(relay)
    assert status == 502
    assert text.startswith(f"GitHub answered 422 to the dispatch of drift.yml on {ref}: ")
    assert message in text
    assert relay.metrics.outcomes[REFUSED] == 1
    assert relay.metrics.last_refusal_status == 422
    assert read_dispatches(stack.record) == []


def test_a_rotated_token_is_used_on_alertmanagers_retry_and_ends_the_refusal(
    stack: Stack,
) -> None:
    stack.token_file.write_text(CONTENTS_TOKEN, encoding="utf-8")
    status, _ = request(f"{stack.url}/alerts", webhook(alert()))
    assert status == 502
    stack.token_file.write_text(DISPATCH_TOKEN, encoding="utf-8")  # read at each dispatch
    status, _ = request(f"{stack.url}/alerts", webhook(alert()))
    assert status == 200
    assert len(read_dispatches(stack.record)) == 1
    metrics = stack.metrics()
    assert metrics["gitops_relay_dispatches_total{refused}"] == 1
    assert metrics["gitops_relay_dispatches_total{dispatched}"] == 1
    # What RetrainingDispatchRefused compares: the success is the later one, it resolves.
    assert (
        metrics["gitops_relay_last_success_timestamp_seconds"]
        >= metrics["gitops_relay_last_refusal_timestamp_seconds"]
        > 0
    )


def test_a_missing_token_file_is_a_refusal_with_status_0(stack: Stack) -> None:
    stack.token_file.unlink()
    status, text = request(f"{stack.url}/alerts", webhook(alert()))
    assert status == 502
    assert text == f"--token-file {stack.token_file}: No such file or directory\n"
    metrics = stack.metrics()
    assert metrics["gitops_relay_dispatches_total{refused}"] == 1
    assert metrics["gitops_relay_last_refusal_status_code"] == 0
    assert metrics["gitops_relay_last_refusal_timestamp_seconds"] > 0


def test_an_unreachable_github_is_a_failure_not_a_refusal(stack: Stack, tmp_path: Path) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(stack.relay))
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    relay = Relay(
        f"http://127.0.0.1:{port}", REPOSITORY, stack.token_file, tmp_path / "s.json", "staging"
    )
    status, text = post_alert(relay)
    assert status == 502
    assert "unreachable" in text
    assert (relay.metrics.outcomes[FAILED], relay.metrics.outcomes[REFUSED]) == (1, 0)
    assert relay.metrics.last_refusal == 0


def test_rate_limits_and_server_errors_are_failures_client_errors_refusals() -> None:
    assert outcome_of(401, None) == REFUSED
    assert outcome_of(403, "4999") == REFUSED
    assert outcome_of(422, None) == REFUSED
    assert outcome_of(403, "0") == FAILED  # the rate limit, not the token
    assert outcome_of(429, None) == FAILED
    assert outcome_of(502, None) == FAILED


def test_a_body_that_is_not_a_webhook_gets_a_400_and_the_relay_keeps_serving(
    stack: Stack,
) -> None:
    status, text = request(f"{stack.url}/alerts", [1, 2])
    assert status == 400
    assert "not an Alertmanager webhook" in text
    status, _ = request(f"{stack.url}/-/healthy")
    assert status == 200


def test_the_stand_in_enforces_githubs_workflow_dispatch_rules(stack: Stack) -> None:
    def dispatch(
        body: object,
        token: str = DISPATCH_TOKEN,
        repository: str = REPOSITORY,
        name: str = "drift.yml",
    ) -> tuple[int, str]:
        url = f"{stack.api}/repos/{repository}/actions/workflows/{name}/dispatches"
        return request(url, body, headers={"Authorization": f"Bearer {token}"})

    assert dispatch({"ref": "main"}, repository="someone/else")[0] == 404
    assert dispatch({"ref": "main"}, name="deploy.yml")[0] == 404
    assert dispatch({"inputs": {}}) == (
        422,
        '{"message": "Invalid request.\\n\\n\\"ref\\" wasn\'t supplied."}',
    )
    assert dispatch({"ref": "main", "inputs": {"window_end": "2026-11-30T10:00:00"}}) == (204, "")
    assert dispatch({"ref": "main"}) == (204, "")  # window_end is optional
    assert [d["inputs"] for d in read_dispatches(stack.record)] == [
        {"window_end": "2026-11-30T10:00:00"},
        {},
    ]
    drift = yaml.safe_load(DRIFT_WORKFLOW.read_text(encoding="utf-8"))
    assert check_inputs(drift, {"window_end": "x", "features": "age"}) == (
        'Unexpected inputs provided: ["features"]'
    )
    assert check_inputs(drift, {"window_end": ["x"]}) == (
        "Input 'window_end' must be a string, a number or a boolean"
    )
    assert check_inputs({"on": {"schedule": [{"cron": "0 0 * * *"}]}}, {}) == (
        "Workflow does not have 'workflow_dispatch' trigger"
    )
    required = {"on": {"workflow_dispatch": {"inputs": {"window": {"required": True}}}}}
    assert check_inputs(required, {}) == "Required input 'window' not provided"


def test_prometheus_scrapes_the_relay_of_its_environment() -> None:
    with_relay = yaml.safe_load(prometheus.render("production", {}, "15s", 9091, 9093, 9095))
    (job,) = [j for j in with_relay["scrape_configs"] if j["job_name"] == "retraining-relay"]
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:9095"], "labels": {"environment": "production"}}
    ]
    without = yaml.safe_load(prometheus.render("production", {}, "15s", 9091, 9093))
    assert "retraining-relay" not in {j["job_name"] for j in without["scrape_configs"]}


def test_the_relay_runs_on_the_standard_library_alone() -> None:
    # The driver runs a copy outside the checkout: it may not import the project or a package.
    import sys

    import monitoring.relay

    result = subprocess.run(
        [sys.executable, "-I", "-S", monitoring.relay.__file__, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--token-file" in result.stdout
    assert "--workflow" in result.stdout
