"""Alertmanager's webhook → GitHub's ``repository_dispatch``: alert-triggered retraining.

``python -m monitoring.relay --port P --repository OWNER/NAME --token-file F`` serves:

* ``POST /alerts`` — Alertmanager's webhook (payload version 4). The *firing* alerts
  labelled ``action="retrain"`` (``DataDriftDetected``: a feature's PSI above
  ``monitoring.severe_psi`` for ``monitoring.retraining.persistence_minutes``; one group, so
  every drifted feature comes in one call) become one ``repository_dispatch`` of type
  ``drift-alert`` to ``{api}/repos/{repository}/dispatches``;
  GitHub runs ``drift.yml`` on it, on the default branch, for the alerting window (its end is
  the ``window_end`` annotation, from the drift job's own series). The drift job then opens
  the retraining PR, at most one at a time (``monitoring.retrain``). An alert already
  dispatched (same fingerprint and start) is not sent again when Alertmanager repeats it;
  the record survives restarts (``--state``). A dispatch GitHub refuses answers 502, so
  Alertmanager retries it.
* ``GET /-/healthy`` — 200.

The token is read from ``--token-file`` at each dispatch (a rotated token is picked up); it
is never taken from the environment, which the supervisor keeps free of secrets. It needs
the repository's Contents: write (fine-grained PAT or GitHub App installation token).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EVENT_TYPE = "drift-alert"
RETRAIN_ACTION = "retrain"


class DispatchError(RuntimeError):
    """GitHub refused or could not be reached; the message says which and why."""


def dispatch_payload(alerts: list[dict[str, Any]], environment: str) -> dict[str, Any]:
    """The ``repository_dispatch`` body for firing alerts of one rule (at most 10 keys)."""
    first = alerts[0]
    window_end = first.get("annotations", {}).get("window_end", "")
    try:
        # The drift job's window is in the runner's local time, as its logs are.
        end = dt.datetime.fromtimestamp(float(window_end)).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        end = ""  # no window series: the drift job judges the last window_days
    features = sorted({a.get("labels", {}).get("feature", "") for a in alerts} - {""})
    return {
        "event_type": EVENT_TYPE,
        "client_payload": {
            "alert": first.get("labels", {}).get("alertname", ""),
            "features": ",".join(features),
            "environment": environment,
            "since": min(a.get("startsAt", "") for a in alerts),
            "window_end": end,
        },
    }


class Relay:
    """What the HTTP handler calls: decides, dispatches, remembers.

    Args:
        api: GitHub's REST API base URL.
        repository: ``owner/name``.
        token_file: The file holding the token.
        state: A JSON file of the alerts already dispatched.
        environment: The environment whose alerts these are.
    """

    def __init__(
        self, api: str, repository: str, token_file: Path, state: Path, environment: str
    ) -> None:
        self.api, self.repository = api.rstrip("/"), repository
        self.token_file, self.state, self.environment = token_file, state, environment
        self.lock = threading.Lock()

    def sent(self) -> set[str]:
        """Keys of the alerts already dispatched."""
        if not self.state.is_file():
            return set()
        return set(json.loads(self.state.read_text(encoding="utf-8")))

    def handle(self, webhook: dict[str, Any]) -> str:
        """One dispatch for the webhook's new firing retrain alerts; what was done.

        Raises:
            DispatchError: When GitHub refused it (the alerts stay unsent: retried).
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
            body = self.dispatch(dispatch_payload([alert for _, alert in new], self.environment))
            sent |= {key for key, _ in new}
            self.state.write_text(json.dumps(sorted(sent)), encoding="utf-8")
            payload = body["client_payload"]
            return (
                f"{payload['alert']} ({payload['features']}): dispatched {EVENT_TYPE} "
                f"to {self.repository}\n"
            )

    def dispatch(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST the dispatch (GitHub answers 204); the body sent."""
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise DispatchError(f"--token-file {self.token_file}: {error.strerror}") from None
        request = urllib.request.Request(
            f"{self.api}/repos/{self.repository}/dispatches",
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
            raise DispatchError(f"GitHub answered {error.code}: {detail}") from None
        except OSError as error:
            raise DispatchError(f"{self.api} unreachable: {error}") from None
        if status != HTTPStatus.NO_CONTENT:
            raise DispatchError(f"GitHub answered {status}, expected 204")
        return body


def handler_for(relay: Relay) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``relay``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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
                print(f"relay: dispatch failed (Alertmanager will retry): {error}", flush=True)
                self.answer(502, f"{error}\n")
                return
            print(f"relay: {done}", end="", flush=True)
            self.answer(200, done)

        def answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
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
    args = parser.parse_args(argv)
    relay = Relay(args.api, args.repository, args.token_file, args.state, args.environment)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(relay))
    print(f"relay: {args.environment} alerts -> {args.api}/repos/{args.repository}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
