"""Alertmanager's webhook → a dispatch of GitHub's drift workflow: alert-triggered retraining.

``python -m monitoring.relay --port P --repository OWNER/NAME --token-file F`` serves:

* ``POST /alerts`` — Alertmanager's webhook (payload version 4). The *firing* alerts
  labelled ``action="retrain"`` (``DataDriftDetected``: a feature's PSI above
  ``monitoring.severe_psi`` for ``monitoring.retraining.persistence_minutes``; one group, so
  every drifted feature comes in one call) become one workflow dispatch
  (``POST {api}/repos/{repository}/actions/workflows/{workflow}/dispatches``, GitHub's
  "Create a workflow dispatch event"): ``--workflow`` (``drift.yml``) runs on ``--ref``
  (``main``) for the alerting window (input ``window_end``, from the alert's annotation,
  itself from the drift job's own series). The drift job then opens the retraining PR, at
  most one at a time (``monitoring.retrain``). An alert already dispatched (same fingerprint
  and start) is not sent again when Alertmanager repeats it; the record survives restarts
  (``--state``). A dispatch that fails answers 502, so Alertmanager retries it.
* ``GET /metrics`` — Prometheus's text format: ``gitops_relay_dispatches_total{outcome}``
  (``dispatched``; ``refused``: GitHub answered 4xx, or the token file could not be read;
  ``failed``: unreachable, 5xx or rate-limited), and the last success and refusal
  (timestamps, and the refusal's HTTP status). The rule ``RetrainingDispatchRefused``
  (``prometheus/rules.yml``) fires while the last attempt was refused.
* ``GET /-/healthy`` — 200.

The token is read from ``--token-file`` at each dispatch (a rotated token is picked up); it
is never taken from the environment, which the supervisor keeps free of secrets, and never
printed. It needs the repository's *Actions: read and write* and nothing else (a
fine-grained personal access token limited to this repository: README, "Alert-triggered
retraining"). Standard library only: it runs on the supervisor's interpreter, not the jobs'
venv, so it writes the text format itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RETRAIN_ACTION = "retrain"
WORKFLOW, REF = "drift.yml", "main"
DISPATCHED, REFUSED, FAILED = "dispatched", "refused", "failed"
# Prometheus's text exposition format, version 0.0.4.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DispatchError(RuntimeError):
    """GitHub refused or could not be reached; the message says which and why.

    Attributes:
        outcome: ``refused`` (the token or the request: a retry alone will not help) or
            ``failed`` (GitHub unreachable, erring or rate-limiting: a retry may).
        status: GitHub's HTTP status; 0 when no answer came (or no token was read).
    """

    def __init__(self, message: str, outcome: str, status: int = 0) -> None:
        super().__init__(message)
        self.outcome, self.status = outcome, status


def outcome_of(status: int, rate_limit_remaining: str | None) -> str:
    """``refused`` for GitHub's 4xx answers, ``failed`` for the rest and for rate limits.

    GitHub answers an exhausted rate limit with 429, or 403 with ``x-ratelimit-remaining: 0``
    (GitHub docs, "Rate limits for the REST API"): that passes, a refused token does not.
    """
    if status == HTTPStatus.TOO_MANY_REQUESTS or (
        status == HTTPStatus.FORBIDDEN and rate_limit_remaining == "0"
    ):
        return FAILED
    return REFUSED if 400 <= status < 500 else FAILED


def dispatch_inputs(alerts: list[dict[str, Any]]) -> dict[str, str]:
    """The workflow's inputs for firing alerts of one rule: the alerting window's end."""
    window_end = alerts[0].get("annotations", {}).get("window_end", "")
    try:
        # The drift job's window is in the runner's local time, as its logs are.
        end = dt.datetime.fromtimestamp(float(window_end)).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return {}  # no window series: the drift job judges the last window_days
    return {"window_end": end}


class DispatchMetrics:
    """What the relay exposes on ``GET /metrics``: every dispatch's outcome, the last ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes = dict.fromkeys((DISPATCHED, REFUSED, FAILED), 0)
        self.last_success = 0.0
        self.last_refusal = 0.0
        self.last_refusal_status = 0

    def count(self, outcome: str, status: int = 0) -> None:
        """One dispatch attempt's ``outcome`` (with GitHub's ``status`` for a refusal)."""
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == DISPATCHED:
                self.last_success = time.time()
            elif outcome == REFUSED:
                self.last_refusal, self.last_refusal_status = time.time(), status

    def render(self) -> str:
        """The metrics in Prometheus's text format."""
        with self.lock:
            lines = [
                "# HELP gitops_relay_dispatches_total Workflow dispatches the relay asked "
                "GitHub for, by outcome.",
                "# TYPE gitops_relay_dispatches_total counter",
                *(
                    f'gitops_relay_dispatches_total{{outcome="{outcome}"}} {count}'
                    for outcome, count in self.outcomes.items()
                ),
            ]
            gauges = (
                (
                    "gitops_relay_last_success_timestamp_seconds",
                    "When GitHub last accepted a dispatch (0: not since the relay started).",
                    self.last_success,
                ),
                (
                    "gitops_relay_last_refusal_timestamp_seconds",
                    "When GitHub last refused a dispatch (0: not since the relay started).",
                    self.last_refusal,
                ),
                (
                    "gitops_relay_last_refusal_status_code",
                    "GitHub's HTTP status for the last refused dispatch (0: the token file "
                    "could not be read, or no refusal).",
                    float(self.last_refusal_status),
                ),
            )
        for name, help_text, value in gauges:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value!r}"]
        return "\n".join(lines) + "\n"


class Relay:
    """What the HTTP handler calls: decides, dispatches, remembers, counts.

    Args:
        api: GitHub's REST API base URL.
        repository: ``owner/name``.
        token_file: The file holding the token.
        state: A JSON file of the alerts already dispatched.
        environment: The environment whose alerts these are.
        workflow: The workflow file (or id) to dispatch.
        ref: The branch it runs on.
    """

    def __init__(
        self,
        api: str,
        repository: str,
        token_file: Path,
        state: Path,
        environment: str,
        workflow: str = WORKFLOW,
        ref: str = REF,
    ) -> None:
        self.api, self.repository = api.rstrip("/"), repository
        self.token_file, self.state, self.environment = token_file, state, environment
        self.workflow, self.ref = workflow, ref
        self.lock = threading.Lock()
        self.metrics = DispatchMetrics()

    def sent(self) -> set[str]:
        """Keys of the alerts already dispatched."""
        if not self.state.is_file():
            return set()
        return set(json.loads(self.state.read_text(encoding="utf-8")))

    def handle(self, webhook: dict[str, Any]) -> str:
        """One dispatch for the webhook's new firing retrain alerts; what was done.

        Raises:
            DispatchError: When it failed (the alerts stay unsent: Alertmanager retries).
        """
        with self.lock:
            sent = self.sent()
            new: list[tuple[str, dict[str, Any]]] = []
            repeated: list[tuple[str, dict[str, Any]]] = []
            for alert in webhook.get("alerts", []):
                labels = alert.get("labels", {})
                if alert.get("status") != "firing" or labels.get("action") != RETRAIN_ACTION:
                    continue
                key = f"{alert.get('fingerprint', '')}@{alert.get('startsAt', '')}"
                (repeated if key in sent else new).append((key, alert))
            if not new:
                return "already dispatched\n" if repeated else "nothing to do\n"
            alerts = [alert for _, alert in new]
            try:
                self.dispatch(dispatch_inputs(alerts))
            except DispatchError as error:
                self.metrics.count(error.outcome, error.status)
                raise
            self.metrics.count(DISPATCHED)
            sent |= {key for key, _ in new}
            self.state.write_text(json.dumps(sorted(sent)), encoding="utf-8")
            name = alerts[0].get("labels", {}).get("alertname", "")
            features = sorted({a.get("labels", {}).get("feature", "") for a in alerts} - {""})
            return (
                f"{name} ({','.join(features)}): dispatched {self.workflow} on {self.ref} "
                f"of {self.repository}\n"
            )

    def dispatch(self, inputs: dict[str, str]) -> dict[str, Any]:
        """POST the workflow dispatch (GitHub answers 204); the body sent.

        Raises:
            DispatchError: With GitHub's status and message, never the token.
        """
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise DispatchError(
                f"--token-file {self.token_file}: {error.strerror}", REFUSED
            ) from None
        body = {"ref": self.ref, "inputs": inputs}
        workflow = urllib.parse.quote(self.workflow, safe="")
        request = urllib.request.Request(
            f"{self.api}/repos/{self.repository}/actions/workflows/{workflow}/dispatches",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            outcome = outcome_of(error.code, error.headers.get("X-RateLimit-Remaining"))
            raise DispatchError(
                f"GitHub answered {error.code} to the dispatch of {self.workflow} on "
                f"{self.ref}: {detail}",
                outcome,
                error.code,
            ) from None
        except OSError as error:
            raise DispatchError(f"{self.api} unreachable: {error}", FAILED) from None
        if status != HTTPStatus.NO_CONTENT:
            raise DispatchError(f"GitHub answered {status}, expected 204", FAILED, status)
        return body


def handler_for(relay: Relay) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``relay``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self.answer(200, relay.metrics.render(), METRICS_CONTENT_TYPE)
                return
            self.answer(200 if self.path == "/-/healthy" else 404, "ok\n")

        def do_POST(self) -> None:
            if self.path != "/alerts":
                self.answer(404, "POST /alerts\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                webhook = json.loads(self.rfile.read(length))
                if not isinstance(webhook, dict):
                    raise ValueError("the webhook body is not a JSON object")
            except ValueError as error:
                self.answer(400, f"not an Alertmanager webhook: {error}\n")
                return
            try:
                done = relay.handle(webhook)
            except DispatchError as error:
                print(
                    f"relay: dispatch {error.outcome} (Alertmanager will retry): {error}",
                    flush=True,
                )
                self.answer(502, f"{error}\n")
                return
            print(f"relay: {done}", end="", flush=True)
            self.answer(200, done)

        def answer(
            self, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
        ) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per decision instead (above)

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repository", required=True, help="owner/name")
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--api", default="https://api.github.com")
    parser.add_argument("--state", type=Path, required=True, help="alerts already dispatched")
    parser.add_argument("--environment", default="production")
    parser.add_argument("--workflow", default=WORKFLOW, help="the workflow file to dispatch")
    parser.add_argument("--ref", default=REF, help="the branch it runs on")
    args = parser.parse_args(argv)
    relay = Relay(
        args.api,
        args.repository,
        args.token_file,
        args.state,
        args.environment,
        args.workflow,
        args.ref,
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(relay))
    print(
        f"relay: {args.environment} alerts -> {args.workflow} on {args.ref} of "
        f"{args.api}/repos/{args.repository}",
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
