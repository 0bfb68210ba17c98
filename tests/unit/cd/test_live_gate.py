"""The live gate's load run against a stand-in router on loopback (a real HTTP server)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.params import LiveParams
from scripts.cd.checks import live_gate

METADATA = {"schema": {"columns": {"age": {"dtype": "int", "min": 18, "max": 100}}}}


def serve(fail_every: int, delay_s: float) -> Iterator[str]:
    calls = {"predict": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
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
