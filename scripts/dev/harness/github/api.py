"""A stand-in for GitHub's REST API over HTTP, for what long-running services call.

The workflows reach GitHub through ``gh``/``cml`` (:mod:`scripts.dev.harness.github.cli`);
a service that outlives its job (the retraining relay, :mod:`monitoring.relay`) speaks
HTTP instead. This server answers the one route it uses, with GitHub's rules
(docs/harness.md):

``POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches`` (GitHub docs,
"Create a workflow dispatch event"; the token needs *Actions: write*): a bearer token is
required (401 without, with an unknown or an expired one); the repository must be the
sandbox's (404); a token without Actions: write gets 403 (an App installation token of
this repository's App, which holds Actions: read; a fine-grained token with Contents
only; a fork's read-only token); the workflow file must be on the default branch (404);
``ref`` is required and must exist (422), the workflow there must have a
``workflow_dispatch`` trigger (422), ``inputs`` may name only the inputs it declares and
must give the required ones (422); success is 204. Each accepted dispatch is recorded
(:meth:`Record.log_dispatch`: workflow, ref, inputs, the kind of token); the harness then
runs that workflow file of that ref with those inputs (``Sandbox.deliver_dispatches``).
Unlike other events, one made with a workflow's ``GITHUB_TOKEN`` does start a run.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from scripts.dev.harness.github.state import Record
from scripts.dev.harness.github.tokens import EXPIRED, FINE_GRAINED, KINDS, allowed
from scripts.dev.harness.workflows import event_filters

ROUTE = re.compile(
    r"^/repos/(?P<repository>[^/]+/[^/]+)/actions/workflows/(?P<workflow>[^/]+)/dispatches$"
)
DEFAULT_BRANCH = "main"
def workflow_at(origin: Path, ref: str, workflow: str) -> dict[Any, Any] | None:
    """``.github/workflows/<workflow>`` as data at ``ref`` of the git repository ``origin``.

    None when the ref or the file is not there.
    """
    shown = subprocess.run(
        ["git", "--git-dir", str(origin), "show", f"{ref}:.github/workflows/{workflow}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        return None
    document = yaml.safe_load(shown.stdout)
    return document if isinstance(document, dict) else None


def ref_exists(origin: Path, ref: str) -> bool:
    """Whether ``ref`` (a branch or a tag) names a commit of ``origin``."""
    found = subprocess.run(
        ["git", "--git-dir", str(origin), "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


def check_inputs(workflow: Mapping[Any, Any], inputs: object) -> str | None:
    """GitHub's validation of a dispatch's ``inputs``; the 422 message, or None when valid."""
    filters = event_filters(workflow)
    if "workflow_dispatch" not in filters:
        return "Workflow does not have 'workflow_dispatch' trigger"
    if not isinstance(inputs, dict):
        return "inputs must be an object"
    declared: Mapping[str, Any] = (filters["workflow_dispatch"] or {}).get("inputs") or {}
    unexpected = sorted(set(inputs) - set(declared))
    if unexpected:
        return f"Unexpected inputs provided: {json.dumps(unexpected)}"
    for name, spec in declared.items():
        spec = spec or {}
        if spec.get("required") and "default" not in spec and name not in inputs:
            return f"Required input '{name}' not provided"
        value = inputs.get(name)
        if value is not None and not isinstance(value, str | bool | int | float):
            return f"Input '{name}' must be a string, a number or a boolean"
        options = spec.get("options")
        if spec.get("type") == "choice" and value is not None and value not in (options or []):
            return f"Provided value '{value}' for input '{name}' not in the list of allowed values"
    return None


def read_dispatches(record: Path) -> list[dict[str, Any]]:
    """Every accepted workflow dispatch, oldest first."""
    return Record(record).dispatches()


def handler_for(record: Path, repository: str, origin: Path, tokens: Mapping[str, str]) -> type:
    """The request handler: ``origin`` holds the workflows, ``tokens`` maps token -> kind."""
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
            if kind is None or kind == EXPIRED:
                self.answer(401, {"message": "Bad credentials"})
                return
            if match["repository"] != repository:
                self.answer(404, {"message": "Not Found"})
                return
            if not allowed(kind, "actions", "write", FINE_GRAINED.get(kind)):
                holder = "personal access token" if kind in FINE_GRAINED else "integration"
                self.answer(403, {"message": f"Resource not accessible by {holder}"})
                return
            name = match["workflow"]
            if workflow_at(origin, DEFAULT_BRANCH, name) is None:
                self.answer(404, {"message": "Not Found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            except ValueError:
                self.answer(400, {"message": "Problems parsing JSON"})
                return
            ref = body.get("ref") if isinstance(body, dict) else None
            if not isinstance(ref, str) or not ref:
                self.answer(422, {"message": 'Invalid request.\n\n"ref" wasn\'t supplied.'})
                return
            if not ref_exists(origin, ref):
                self.answer(422, {"message": f"No ref found for: {ref}"})
                return
            # A ref without the file has no workflow_dispatch trigger there either.
            inputs = body.get("inputs", {})
            problem = check_inputs(workflow_at(origin, ref, name) or {}, inputs)
            if problem:
                self.answer(422, {"message": problem})
                return
            store.log_dispatch(name, ref, inputs, kind)
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


def serve(
    record: Path, repository: str, origin: Path, tokens: Mapping[str, str] = KINDS
) -> ThreadingHTTPServer:
    """Start the stand-in on a free loopback port, in a daemon thread; the server.

    ``origin`` is the repository's git directory (the sandbox's bare origin): the workflow
    files a dispatch names are read from it. Its base URL is
    ``http://127.0.0.1:<server.server_address[1]>``; ``shutdown()`` stops it.
    """
    record.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(record, repository, origin, tokens))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The stand-in's base URL."""
    return f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def github_api(
    record: Path, repository: str, origin: Path, tokens: Mapping[str, str] = KINDS
) -> Iterator[str]:
    """Serve the stand-in for the block; yields its base URL."""
    server = serve(record, repository, origin, tokens)
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()
