"""The retraining relay against the GitHub API stand-in (both on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitoring.relay import Relay, handler_for
from scripts.cd.checks import request
from scripts.dev.harness.github.api import check_dispatch, github_api, read_dispatches

REPOSITORY = "team/credit-risk"


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


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(relay URL, token file, GitHub record) with the stand-in knowing one App token."""
    record = tmp_path / "record"
    token_file = tmp_path / "token"
    token_file.write_text("app-token\n", encoding="utf-8")
    with github_api(record, REPOSITORY, {"app-token": "app", "ro": "read-only"}) as api:
        relay = Relay(api, REPOSITORY, token_file, tmp_path / "sent.json", "production")
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(relay))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", token_file, record
        finally:
            server.shutdown()
            server.server_close()


def test_a_firing_retrain_alert_is_dispatched_once(relay: tuple[str, Path, Path]) -> None:
    url, _, record = relay
    status, text = request(f"{url}/alerts", webhook(alert(), alert(feature="income")))
    assert status == 200
    assert text == f"DataDriftDetected (age,income): dispatched drift-alert to {REPOSITORY}\n"
    # Alertmanager repeats the group (repeat_interval): no second dispatch.
    status, text = request(f"{url}/alerts", webhook(alert(), alert(feature="income")))
    assert (status, text) == (200, "already dispatched\n")
    (dispatch,) = read_dispatches(record)
    assert dispatch["event_type"] == "drift-alert"
    assert dispatch["token"] == "app"
    payload = dispatch["client_payload"]
    assert payload["alert"] == "DataDriftDetected"
    assert payload["features"] == "age,income"
    assert payload["environment"] == "production"
    assert len(payload["window_end"]) == len("2026-11-30T10:00:00")


def test_resolved_and_other_alerts_are_not_dispatched(relay: tuple[str, Path, Path]) -> None:
    url, _, record = relay
    status, text = request(
        f"{url}/alerts", webhook(alert(status="resolved"), alert(action="page", feature="x"))
    )
    assert (status, text) == (200, "nothing to do\n")
    assert read_dispatches(record) == []


def test_a_refused_dispatch_answers_502_and_succeeds_on_alertmanagers_retry(
    relay: tuple[str, Path, Path],
) -> None:
    url, token_file, record = relay
    token_file.write_text("ro", encoding="utf-8")
    status, text = request(f"{url}/alerts", webhook(alert()))
    assert status == 502
    assert "GitHub answered 403" in text
    token_file.write_text("app-token", encoding="utf-8")  # rotated: read at each dispatch
    status, _ = request(f"{url}/alerts", webhook(alert()))
    assert status == 200
    assert len(read_dispatches(record)) == 1


def test_a_body_that_is_not_a_webhook_gets_a_400_and_the_relay_keeps_serving(
    relay: tuple[str, Path, Path],
) -> None:
    url, _, _ = relay
    status, text = request(f"{url}/alerts", [1, 2])
    assert status == 400
    assert "not an Alertmanager webhook" in text
    status, _ = request(f"{url}/-/healthy")
    assert status == 200


def test_the_stand_in_enforces_githubs_dispatch_rules() -> None:
    assert check_dispatch({"event_type": ""}) == "event_type is required (a string)"
    assert check_dispatch({"event_type": "x" * 101}) == "event_type is longer than 100 characters"
    eleven = {f"k{i}": i for i in range(11)}
    assert check_dispatch({"event_type": "e", "client_payload": eleven}) == (
        "client_payload has 11 top-level properties; at most 10 are allowed"
    )
    assert check_dispatch({"event_type": "e", "client_payload": {"a": 1}}) is None


def test_the_relay_runs_on_the_standard_library_alone() -> None:
    # The driver runs a copy outside the checkout: it may not import the project or a package.
    import subprocess
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
