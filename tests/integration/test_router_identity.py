"""``apply`` proves that its router serves: another program on the router's port fails it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.exit_codes import ExitCode
from scripts.cd import local_driver, nginx
from scripts.cd.bento_store import import_bento
from scripts.cd.checks import request, wait_ready
from scripts.cd.processes import alive, free_port, running_process
from scripts.cd.reaper import descendants
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import DeploymentState, parse_state, save_state
from tests.helpers import Repo

pytestmark = pytest.mark.integration

# Answers 200 to anything, as a health check would like: only the router's header tells
# it apart from the environment's router.
FOREIGN = """
import http.server, sys

class Anything(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Anything).serve_forever()
"""


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, good_bento_copy: Callable[[Path], Repo]
) -> Repo:
    """The module's copy of a project that built the Bento ``credit_risk:good``."""
    return good_bento_copy(tmp_path_factory.mktemp("identity") / "repo")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, built: Repo) -> Path:
    """A BentoML store into which ``credit_risk:good`` was imported (a template, never served)."""
    template = tmp_path_factory.mktemp("imported") / "bentoml"
    import_bento(template, built.path / "dist" / "credit_risk-good.bento")
    return template


@pytest.fixture
def staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: Repo, imported: Path
) -> Iterator[int]:
    """An environment "staging" with its own run dir, store and ports; its router's port.

    Its store is a copy of the imported template (what ``import_bento`` leaves).
    """
    port = free_port()
    monkeypatch.chdir(built.path)
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("GITOPS_ML_STAGING_PORT", str(port))
    monkeypatch.setenv("GITOPS_ML_STAGING_PROMETHEUS_PORT", str(free_port()))
    monkeypatch.setenv("GITOPS_ML_SCRAPE_INTERVAL", "1s")
    shutil.copytree(imported, local_driver.store(DriverSettings.from_env(), "staging"))
    yield port
    local_driver.down(DriverSettings.from_env(), "staging")


def staging_state(**experiment: int) -> DeploymentState:
    variants = [{"name": "champion", "bento": "credit_risk:good", "weight": 100}]
    return parse_state(
        {"environment": "staging", "variants": variants, "experiment": experiment},
        Path("staging.yaml"),
    )


def router_header(url: str) -> str:
    """The ``X-Gitops-Router`` header of the router's answer to ``/readyz``."""
    return nginx.answered_identity(f"{url}/readyz") or ""


def test_the_router_names_its_environment_and_state_across_a_reload(staging: int) -> None:
    settings = DriverSettings.from_env()
    first = staging_state()
    running = local_driver.apply(settings, first)
    assert router_header(running.url) == f"staging {nginx.state_digest(first)}"
    # A new state with the same variants: nginx reloads (HUP) and must answer for it.
    second = staging_state(min_samples_per_arm=500)
    assert nginx.state_digest(second) != nginx.state_digest(first)
    again = local_driver.apply(settings, second)
    assert again.nginx_pid == running.nginx_pid
    assert router_header(again.url) == f"staging {nginx.state_digest(second)}"


def environment_pids(env: str) -> list[int]:
    """The PIDs of supervisord and of every process of its programs (a variant's whole tree)."""
    settings = DriverSettings.from_env()
    supervised = local_driver.supervisor(settings, env)
    pids = [int(supervised.ctl("pid"))] if supervised.running() else []
    for _, pid in local_driver.supervisor(settings, env).states().values():
        if pid:
            pids += [pid, *descendants(pid)]
    return pids


def test_a_foreign_program_on_the_router_port_fails_apply_and_is_named(
    staging: int, built: Repo, tmp_path: Path
) -> None:
    port = staging
    state_dir = tmp_path / "deployments"
    save_state(staging_state(), state_dir / "staging.yaml")
    with running_process([sys.executable, "-c", FOREIGN, str(port)]) as foreign:
        wait_ready(f"http://127.0.0.1:{port}")
        apply = ["apply", "--env", "staging", "--state-dir", str(state_dir)]
        result = built.run(sys.executable, "-m", "scripts.deploy", *apply, check=False)
        assert result.returncode == ExitCode.FOUND_PROBLEM, result.stdout + result.stderr
        assert f"deploy: staging at http://127.0.0.1:{port}" not in result.stdout
        assert (
            f"staging: http://127.0.0.1:{port} is answered by another program, not staging's "
            f"router (port {port}: pid {foreign.pid} `{sys.executable} -c "
        ) in result.stderr
        # The environment started (a variant at least); down stops all of it, and only it.
        started = environment_pids("staging")
        assert len(started) >= 3, started  # supervisord, the variant's reaper and server
        local_driver.down(DriverSettings.from_env(), "staging")
        assert [pid for pid in started if alive(pid)] == []
        assert foreign.poll() is None
        assert request(f"http://127.0.0.1:{port}/readyz")[0] == 200
