"""A stand-in for GitHub's REST API over HTTP, for what long-running services call.

The workflows reach GitHub through ``gh``/``cml`` (:mod:`scripts.dev.harness.github.cli`);
a service that outlives its job (the retraining relay, :mod:`monitoring.relay`) speaks
HTTP instead. This server answers the one route it uses, with GitHub's rules
(docs/harness.md):

``POST /repos/{owner}/{repo}/dispatches`` (GitHub docs, "Create a repository dispatch
event"): a bearer token is required (401 without or with an unknown one); a read-only
token gets 403; the repository must be the sandbox's (404); ``event_type`` is a non-empty
string of at most 100 characters and ``client_payload`` an object of at most 10 top-level
properties (422); success is 204. Each accepted dispatch is recorded
(:meth:`Record.log_dispatch`) with the kind of token that made it; the harness then starts
the default branch's ``repository_dispatch`` workflows (``Sandbox.deliver_dispatches``).
Unlike other events, one made with a workflow's ``GITHUB_TOKEN`` does start workflows.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scripts.dev.harness.github.state import Record
from scripts.dev.harness.github.tokens import KINDS, allowed

ROUTE = re.compile(r"^/repos/(?P<repository>[^/]+/[^/]+)/dispatches$")
MAX_EVENT_TYPE = 100
MAX_PAYLOAD_KEYS = 10


def check_dispatch(body: object) -> str | None:
    """GitHub's validation of a dispatch body; the 422 message, or None when valid."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        return "event_type is required (a string)"
    if len(event_type) > MAX_EVENT_TYPE:
        return f"event_type is longer than {MAX_EVENT_TYPE} characters"
    payload = body.get("client_payload", {})
    if not isinstance(payload, dict):
        return "client_payload must be an object"
    if len(payload) > MAX_PAYLOAD_KEYS:
        return (
            f"client_payload has {len(payload)} top-level properties; "
            f"at most {MAX_PAYLOAD_KEYS} are allowed"
        )
    return None


def read_dispatches(record: Path) -> list[dict[str, Any]]:
    """Every accepted dispatch, oldest first."""
    return Record(record).dispatches()


def handler_for(record: Path, repository: str, tokens: Mapping[str, str]) -> type:
    """The request handler: ``tokens`` maps each known token to its kind."""
    store = Record(record)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            match = ROUTE.match(self.path)
            if match is None:
                self.answer(404, {"message": f"{self.path}: not implemented by the stand-in"})
                return
            authorization = self.headers.get("Authorization", "")
            token = authorization.removeprefix("Bearer ").removeprefix("token ").strip()
            kind = tokens.get(token)
            if kind is None:
                self.answer(401, {"message": "Bad credentials"})
                return
            if not allowed(kind, "contents", "write"):
                self.answer(403, {"message": "Resource not accessible by integration"})
                return
            if match["repository"] != repository:
                self.answer(404, {"message": "Not Found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            except ValueError:
                self.answer(400, {"message": "Problems parsing JSON"})
                return
            problem = check_dispatch(body)
            if problem:
                self.answer(422, {"message": f"Invalid request: {problem}"})
                return
            store.log_dispatch(body["event_type"], body.get("client_payload", {}), kind)
            self.answer(204, None)

        def answer(self, status: int, document: object) -> None:
            body = b"" if document is None else json.dumps(document).encode()
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(record: Path, repository: str, tokens: Mapping[str, str] = KINDS) -> ThreadingHTTPServer:
    """Start the stand-in on a free loopback port, in a daemon thread; the server.

    Its base URL is ``http://127.0.0.1:<server.server_address[1]>``; ``shutdown()`` stops it.
    """
    record.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(record, repository, tokens))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The stand-in's base URL."""
    return f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def github_api(record: Path, repository: str, tokens: Mapping[str, str] = KINDS) -> Iterator[str]:
    """Serve the stand-in for the block; yields its base URL."""
    server = serve(record, repository, tokens)
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()
