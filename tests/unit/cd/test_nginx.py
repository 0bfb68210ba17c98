"""The router's config (golden files) and its identity check (no nginx runs here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts.cd import nginx
from scripts.cd.errors import DeployError
from scripts.cd.processes import free_port, listening_pids, port_owner
from scripts.cd.state import DeploymentState, parse_state

GOLDEN = Path(__file__).parent / "golden"
RUN_DIR = Path("/run/gitops-ml/production/nginx")


def production(variants: list[tuple[str, str, int]]) -> DeploymentState:
    return parse_state(
        {
            "environment": "production",
            "variants": [{"name": n, "bento": b, "weight": w} for n, b, w in variants],
        },
        Path("production.yaml"),
    )


@pytest.mark.parametrize(
    ("golden", "variants", "ports"),
    [
        (
            "nginx-ab.conf",
            [("champion", "credit_risk:a", 90), ("challenger", "credit_risk:b", 10)],
            {"champion": 40001, "challenger": 40002},
        ),
        ("nginx-champion.conf", [("champion", "credit_risk:a", 100)], {"champion": 40001}),
    ],
)
def test_render_matches_the_golden_file(
    golden: str, variants: list[tuple[str, str, int]], ports: dict[str, int]
) -> None:
    state = production(variants)
    rendered = nginx.render(state, ports, 8080, RUN_DIR)
    # The digest changes with the state's schema; test_the_state_digest_* checks it.
    normalised = rendered.replace(nginx.state_digest(state), "<state digest>")
    assert normalised == (GOLDEN / golden).read_text(encoding="utf-8")


def test_a_challenger_at_weight_zero_gets_no_traffic_but_keeps_its_failover() -> None:
    state = production([("champion", "credit_risk:a", 100), ("challenger", "credit_risk:b", 0)])
    rendered = nginx.render(state, {"champion": 40001, "challenger": 40002}, 8080, RUN_DIR)
    assert "split_clients" not in rendered
    assert 'map $route_key $variant { default "champion"; }' in rendered
    assert "server 127.0.0.1:40001 backup;" in rendered


def test_the_sticky_header_becomes_an_nginx_variable() -> None:
    state = production([("champion", "credit_risk:a", 100)])
    state = state.model_copy(
        update={"routing": state.routing.model_copy(update={"sticky_header": "X-Session-Key"})}
    )
    rendered = nginx.render(state, {"champion": 40001}, 8080, RUN_DIR)
    assert (
        'map $http_x_session_key $route_key { "" $request_id; default $http_x_session_key; }'
        in (rendered)
    )


def test_the_state_digest_follows_the_content_not_the_document() -> None:
    state = production([("champion", "credit_risk:a", 90), ("challenger", "credit_risk:b", 10)])
    reordered = parse_state(
        {
            "variants": [
                {"weight": 90, "bento": "credit_risk:a", "name": "champion"},
                {"weight": 10, "bento": "credit_risk:b", "name": "challenger"},
            ],
            "environment": "production",
            "routing": {"port": 8080},  # the default, spelled out
        },
        Path("production.yaml"),
    )
    shifted = production([("champion", "credit_risk:a", 80), ("challenger", "credit_risk:b", 20)])
    digest = nginx.state_digest(state)
    assert len(digest) == 16
    assert int(digest, 16) >= 0
    assert nginx.state_digest(reordered) == digest
    assert nginx.state_digest(shifted) != digest


def test_every_answer_names_the_environment_and_the_state() -> None:
    state = production([("champion", "credit_risk:a", 100)])
    rendered = nginx.render(state, {"champion": 40001}, 8080, RUN_DIR)
    digest = nginx.state_digest(state)
    assert nginx.identity(state) == f"production {digest}"
    assert f'add_header X-Gitops-Router "production {digest}" always;' in rendered


@contextmanager
def answering(headers: list[str]) -> Iterator[int]:
    """A loopback HTTP server answering 200 to anything; its port.

    The i-th answer carries ``X-Gitops-Router: headers[i]`` (the last one from then on;
    "": no such header).
    """
    answers = iter(headers)
    last = [headers[-1]]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            value = last[0] = next(answers, last[0])
            self.send_response(200)
            if value:
                self.send_header(nginx.ROUTER_HEADER, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_identity_passes_once_the_reloaded_router_answers_for_this_state() -> None:
    state = production([("champion", "credit_risk:a", 100)])
    before = production([("champion", "credit_risk:b", 100)])
    with answering([nginx.identity(before)] * 3 + [nginx.identity(state)]) as port:
        nginx.check_identity(f"http://127.0.0.1:{port}", state, port, timeout=5.0)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", r"is answered by another program, not production's router"),
        ("staging 0123456789abcdef", r"is answered by staging's router, not production's"),
        ("production 0123456789abcdef", r"still answered by production's router for another"),
    ],
)
def test_an_answer_from_anything_else_names_the_port_and_its_owner(
    header: str, message: str
) -> None:
    state = production([("champion", "credit_risk:a", 100)])
    with answering([header]) as port:
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(DeployError) as raised:
            nginx.check_identity(url, state, port, timeout=0.5)
    assert str(raised.value).startswith(f"production: {url} ")
    assert raised.match(message)
    assert f"(port {port}: pid {os.getpid()} `" in str(raised.value)


def test_no_answer_says_nothing_listens() -> None:
    state = production([("champion", "credit_risk:a", 100)])
    port = free_port()
    with pytest.raises(DeployError, match=rf"nothing answers at .*:{port} .*nothing listens\)$"):
        nginx.check_identity(f"http://127.0.0.1:{port}", state, port, timeout=0.5)


LISTENER = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_the_port_owner_is_the_listening_process_and_its_command_line() -> None:
    command = [sys.executable, "-c", LISTENER]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as listener:
        assert listener.stdout is not None
        assert listener.stdin is not None
        port = int(listener.stdout.readline())
        owner = port_owner(port)
        listener.stdin.close()
    one_line = " ".join(" ".join(command).split())
    assert owner == f"pid {listener.pid} `{one_line}`"


def test_listening_pids_sees_this_process_but_not_a_client() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            assert listening_pids(port) == [os.getpid()]
    assert listening_pids(port) == []
