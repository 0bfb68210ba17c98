"""Checks against a running service over HTTP: readiness and the smoke test.

The smoke test checks the metadata, one prediction, one feedback, a rejected bad request
(4xx, and the server still answers) and the custom Prometheus series. The deploy driver
waits for readiness with :func:`wait_ready`; ``python -m scripts.smoke`` runs :func:`check`,
and with ``--load`` the live gate (:func:`live_gate`): a bounded load run of the built
Bento behind staging's router, judged against ``gates.live`` before production.

Every request they send is marked synthetic (``X-Gitops-Synthetic: smoke`` or
``live-gate``): the service logs the mark with the prediction and the feedback, and the
drift job leaves those records out of its window and of the retraining data.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bentos.prediction_log import SYNTHETIC_HEADER
from pipeline.params import LiveParams
from scripts.cd.errors import SmokeError
from scripts.cd.processes import running_process

READY_TIMEOUT_S = 60.0
# One sticky user: behind an A/B router every call of the smoke test reaches the same variant.
SMOKE_HEADERS = {"X-User-Id": "gitops-ml-smoke-test", SYNTHETIC_HEADER: "smoke"}
LIVE_GATE_SOURCE = "live-gate"


def request(
    url: str,
    payload: Any | None = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """GET (no payload) or POST JSON; return status and body, 4xx/5xx included."""
    data = None if payload is None else json.dumps(payload).encode()
    sent = {**(headers or {})}
    if payload is not None:
        sent["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def wait_ready(url: str, timeout: float = READY_TIMEOUT_S, path: str = "/readyz") -> None:
    """Poll ``url + path`` until it answers 200.

    Raises:
        SmokeError: When it does not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(f"{url}{path}", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SmokeError(f"{path}: {url} not ready after {timeout:.0f} s")


@contextmanager
def running(
    command: list[str],
    url: str,
    ready_path: str = "/readyz",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """Run a server for the duration of the block, once ``url + ready_path`` answers 200.

    Yields:
        ``url``.
    """
    with running_process(command, env=env, cwd=cwd, log=log):
        wait_ready(url, path=ready_path)
        yield url


def served(
    target: str,
    port: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> AbstractContextManager[str]:
    """``bentoml serve target`` on a loopback port for the duration of the block."""
    command = ["bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return running(command, f"http://127.0.0.1:{port}", env=env, cwd=cwd, log=log)


def example_record(metadata: dict[str, Any]) -> dict[str, Any]:
    """A valid record built from the served schema (mid-range values, first categories)."""
    record: dict[str, Any] = {}
    for name, spec in metadata["schema"]["columns"].items():
        if spec["dtype"] == "category":
            record[name] = spec["categories"][0]
            continue
        low = spec.get("min") if spec.get("min") is not None else 0.0
        high = spec.get("max") if spec.get("max") is not None else low + 100.0
        value = (low + high) / 2
        record[name] = int(value) if spec["dtype"] == "int" else float(value)
    return record


def check(url: str) -> list[str]:
    """Run the smoke checks against a ready service; return one line per passed check.

    Raises:
        SmokeError: Naming the first failed check.
    """
    passed: list[str] = []

    def call(path: str, payload: Any | None = None) -> tuple[int, str]:
        return request(f"{url}{path}", payload, headers=SMOKE_HEADERS)

    def expect(name: str, condition: bool, detail: str) -> None:
        if not condition:
            raise SmokeError(f"{name}: {detail}")
        passed.append(name)

    status, body = call("/metadata", {})
    expect("metadata", status == 200, f"HTTP {status}: {body[:200]}")
    metadata = json.loads(body)
    status, body = call("/predict", {"records": [example_record(metadata)]})
    expect("predict", status == 200, f"HTTP {status}: {body[:200]}")
    (prediction,) = json.loads(body)["predictions"]
    expect("predict version", prediction["model_version"] == metadata["model_version"], body)
    expect("probability", 0.0 <= prediction["probability"] <= 1.0, body)
    status, body = call("/feedback", {"request_id": prediction["request_id"], "label": 1})
    expect("feedback", status == 200, f"HTTP {status}: {body[:200]}")
    status, body = call("/predict", {"records": [{"unknown_field": 1}]})
    expect("bad request rejected", 400 <= status < 500, f"HTTP {status}: {body[:200]}")
    expect("still serving", call("/readyz")[0] == 200, "readyz failed after a bad request")
    status, body = call("/metrics")
    series = f'credit_risk_predictions_total{{model_version="{metadata["model_version"]}"'
    expect("metrics", status == 200 and "credit_risk_feedback_total" in body, f"HTTP {status}")
    expect("metrics labels", series in body.replace(", ", ","), "no labelled prediction series")
    return passed


@dataclass(frozen=True)
class LoadResult:
    """What a bounded load run measured against a router."""

    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    seconds: float

    @property
    def error_rate(self) -> float:
        """Share of requests that failed (non-2xx or no answer)."""
        return self.errors / self.requests if self.requests else 0.0


def load_probe(url: str, record: dict[str, Any], requests: int, concurrency: int) -> LoadResult:
    """POST ``requests`` one-record predictions at ``concurrency``; latency and errors.

    Each request carries its own user id, so an A/B router spreads them as real traffic,
    and the live gate's synthetic mark, so the drift job leaves its predictions out.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> tuple[float, bool]:
        start = time.perf_counter()
        try:
            status, _ = request(
                f"{url}/predict",
                {"records": [record]},
                headers={
                    "X-User-Id": f"gitops-ml-load-{index}",
                    SYNTHETIC_HEADER: LIVE_GATE_SOURCE,
                },
            )
        except OSError:
            status = 0
        return (time.perf_counter() - start) * 1000, 200 <= status < 300

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    latencies = np.array([latency for latency, _ in outcomes])
    return LoadResult(
        requests=requests,
        errors=sum(not ok for _, ok in outcomes),
        p50_ms=round(float(np.percentile(latencies, 50)), 3),
        p95_ms=round(float(np.percentile(latencies, 95)), 3),
        seconds=round(elapsed, 3),
    )


def live_gate(url: str, budget: LiveParams) -> tuple[LoadResult, list[str]]:
    """Load the service at ``url`` as ``gates.live`` says; the result and what broke budget."""
    headers = {SYNTHETIC_HEADER: LIVE_GATE_SOURCE}
    status, body = request(f"{url}/metadata", {}, headers=headers)
    if status != 200:
        raise SmokeError(f"metadata: HTTP {status}: {body[:200]}")
    record = example_record(json.loads(body))
    result = load_probe(url, record, budget.requests, budget.concurrency)
    problems = []
    if result.p95_ms > budget.p95_ms:
        problems.append(f"p95 {result.p95_ms:.1f} ms > budget {budget.p95_ms} ms")
    if result.error_rate > budget.max_error_rate:
        problems.append(
            f"error rate {result.error_rate:.3%} > budget {budget.max_error_rate:.3%} "
            f"({result.errors} of {result.requests})"
        )
    return result, problems
