"""Smoke-test a running service: ``python -m scripts.smoke --url http://127.0.0.1:3000``.

Checks readiness, one prediction, the metadata, one feedback, a rejected bad request
(4xx, and the server still answers), and the custom Prometheus series. With
``--serve TARGET`` it first starts ``bentoml serve TARGET`` on a free loopback port and
stops it afterwards. Exits 1 with the failed check's name; the deploy stage runs it
against staging.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 60.0


class SmokeError(RuntimeError):
    """A check failed."""


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    with ExitStack() as stack:
        output = stack.enter_context(log.open("w")) if log else None
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=output)
        try:
            wait_ready(url, path=ready_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


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
    """Run the checks against a ready service; return one line per passed check."""
    passed: list[str] = []
    # One sticky user: behind an A/B router every call reaches the same variant.
    sticky = {"X-User-Id": "gitops-ml-smoke-test"}

    def call(path: str, payload: Any | None = None) -> tuple[int, str]:
        return request(f"{url}{path}", payload, headers=sticky)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; exit 1 naming the failed check."""
    parser = argparse.ArgumentParser(prog="python -m scripts.smoke", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running service")
    target.add_argument("--serve", help="start `bentoml serve SERVE` first (a Bento tag or module)")
    args = parser.parse_args(argv)
    try:
        if args.serve:
            # The server's own log (it logs the rejected request's traceback) goes to a file.
            log = Path("logs/smoke-serve.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"smoke: serving {args.serve} (server log: {log})")
            with served(args.serve, free_port(), log=log) as url:
                passed = check(url)
        else:
            wait_ready(args.url)
            passed = check(args.url)
    except SmokeError as error:
        print(f"smoke: FAILED {error}", file=sys.stderr)
        return 1
    print(f"smoke: passed {len(passed)} checks ({', '.join(passed)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
