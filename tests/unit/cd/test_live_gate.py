"""The live gate's load run against a stand-in router on loopback (a real HTTP server).

Also what the tools' requests tell the service: the smoke test's, the live gate's and
``make traffic``'s carry the synthetic mark that keeps their rows out of drift windows.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import scripts.cd.checks as checks
from bentos.prediction_log import SYNTHETIC_HEADER
from pipeline.params import LiveParams
from scripts.cd.checks import live_gate
from scripts.dev.traffic import simulate

METADATA = {"schema": {"columns": {"age": {"dtype": "int", "min": 18, "max": 100}}}}


def serve(
    fail_every: int, delay_s: float, marks: list[tuple[str, str | None]] | None = None
) -> Iterator[str]:
    """A stand-in router; ``marks`` collects each request's path and synthetic mark."""
    calls = {"predict": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if marks is not None:
                marks.append((self.path, self.headers.get(SYNTHETIC_HEADER)))
            if self.path == "/metadata":
                status, body = 200, METADATA
            else:
                calls["predict"] += 1
                time.sleep(delay_s)
                failed = fail_every and calls["predict"] % fail_every == 0
                status, body = (503, {"error": "overloaded"}) if failed else (200, {"ok": 1})
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def healthy() -> Iterator[str]:
    yield from serve(fail_every=0, delay_s=0.0)


@pytest.fixture
def flaky() -> Iterator[str]:
    yield from serve(fail_every=10, delay_s=0.0)


@pytest.fixture
def slow() -> Iterator[str]:
    yield from serve(fail_every=0, delay_s=0.05)


def test_a_service_within_budget_passes(healthy: str) -> None:
    budget = LiveParams(requests=50, concurrency=4, p95_ms=1_000, max_error_rate=0.01)
    result, problems = live_gate(healthy, budget)
    assert (result.requests, result.errors, problems) == (50, 0, [])
    assert 0 < result.p50_ms <= result.p95_ms


def test_errors_over_budget_are_named(flaky: str) -> None:
    budget = LiveParams(requests=50, concurrency=1, p95_ms=1_000, max_error_rate=0.01)
    result, problems = live_gate(flaky, budget)
    assert result.errors == 5
    assert problems == ["error rate 10.000% > budget 1.000% (5 of 50)"]


def test_latency_over_budget_is_named(slow: str) -> None:
    budget = LiveParams(requests=20, concurrency=2, p95_ms=10, max_error_rate=0.01)
    result, problems = live_gate(slow, budget)
    assert result.p95_ms >= 50
    assert problems == [f"p95 {result.p95_ms:.1f} ms > budget 10.0 ms"]


@pytest.fixture
def marks() -> list[tuple[str, str | None]]:
    return []


@pytest.fixture
def recording(marks: list[tuple[str, str | None]]) -> Iterator[str]:
    yield from serve(fail_every=0, delay_s=0.0, marks=marks)


def test_every_request_of_the_live_gate_is_marked_synthetic(
    recording: str, marks: list[tuple[str, str | None]]
) -> None:
    budget = LiveParams(requests=20, concurrency=4, p95_ms=1_000, max_error_rate=0.01)
    live_gate(recording, budget)
    assert len(marks) == 21
    assert {mark for _, mark in marks} == {"live-gate"}
    assert [path for path, _ in marks].count("/predict") == 20


def test_every_request_of_the_smoke_test_is_marked_synthetic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, str | None]] = []
    version = "abc123"
    prediction = {"model_version": version, "probability": 0.3, "request_id": "0" * 32 + "-0"}
    series = f'credit_risk_predictions_total{{model_version="{version}"}} 1'
    answers = {
        "/metadata": (200, json.dumps({"model_version": version, **METADATA})),
        "/feedback": (200, "{}"),
        "/readyz": (200, ""),
        "/metrics": (200, f"credit_risk_feedback_total 1\n{series}"),
    }

    def answer(
        url: str,
        payload: object = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        path = url.removeprefix("http://service")
        sent.append((path, (headers or {}).get(SYNTHETIC_HEADER)))
        if path == "/predict":
            valid = payload == {"records": [{"age": 59}]}
            return (200, json.dumps({"predictions": [prediction]})) if valid else (400, "{}")
        return answers[path]

    monkeypatch.setattr(checks, "request", answer)
    passed = checks.check("http://service")
    assert "feedback" in passed
    assert [path for path, _ in sent] == [
        "/metadata",
        "/predict",
        "/feedback",
        "/predict",
        "/readyz",
        "/metrics",
    ]
    assert {mark for _, mark in sent} == {"smoke"}


@pytest.mark.parametrize(("synthetic", "expected"), [("traffic", "traffic"), (None, None)])
def test_simulated_traffic_is_marked_unless_sent_as_customers(
    recording: str,
    marks: list[tuple[str, str | None]],
    synthetic: str | None,
    expected: str | None,
) -> None:
    simulate(recording, rows=12, users=3, feedback_fraction=0.0, seed=0, synthetic=synthetic)
    assert marks == [("/predict", expected)] * 12
