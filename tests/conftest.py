"""Session-wide test settings, and the check that the suite leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from scripts.cd.processes import alive
from scripts.dev.workspace import uv_cache_dir

# What a GitHub job's environment carries (GitHub docs, "Store information in variables":
# default variables), the storage keys and tokens a workflow may export, and this project's
# own settings: none may reach a test unless the test sets it. RUNNER_TRACKING_ID stays, so
# a runner still cleans up what the suite leaves behind; GITOPS_ML_S3_SERVER is the
# Makefile's path to moto, a tool location rather than a setting.
CLEARED_PREFIXES = ("GITHUB_", "RUNNER_", "ACTIONS_", "AWS_", "GITOPS_ML_", "GITOPS_APP_")
CLEARED_NAMES = {
    "CI",
    "ACT",
    "GH_TOKEN",
    "KUBECONFIG",
    "KUBECONFIG_DATA",
    # Settings README documents for the Makefile and the workflows.
    "DEPLOY_ENV",
    "DRIFT_END",
    "DRIFT_WINDOW",
    "PREDICTION_LOGS",
    "PROMETHEUS_URL",
    "PUSHGATEWAY",
    "PUSHGATEWAY_URL",
    "STATE_PUSH",
    "WINDOW",
}
KEPT = {"RUNNER_TRACKING_ID", "GITOPS_ML_S3_SERVER"}


def hermetic_environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without a CI job's variables, storage keys or this project's settings."""
    return {
        name: value
        for name, value in environ.items()
        if name in KEPT or not (name in CLEARED_NAMES or name.startswith(CLEARED_PREFIXES))
    }


def pytest_configure(config: pytest.Config) -> None:
    """Start every test from a laptop's environment, whatever job runs the suite.

    In ci.yml's test job GitHub sets GITHUB_SHA, GITHUB_REF, GITHUB_ACTIONS, ...; a test
    that depends on one sets it itself. BentoML's store and telemetry stay away from the
    user's home (set before any test imports bentoml, which reads BENTOML_HOME once); uv
    stays offline.
    """
    kept = hermetic_environment(dict(os.environ))
    os.environ.clear()
    os.environ.update(kept)
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="gitops-ml-bentoml-")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    # The services' interpreters (scripts/cd/interpreters.py) are built from uv's cache,
    # which `make install` filled with the same pins: no index request leaves the machine.
    # Named explicitly: the harness's machines have homes of their own.
    os.environ["UV_OFFLINE"] = "1"
    os.environ["UV_CACHE_DIR"] = uv_cache_dir()


def processes_using(path: str) -> dict[int, str]:
    """Live processes whose command line or environment names ``path``: pid -> command."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if not alive(int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if path in command or path in environ:
            found[int(entry.name)] = command.strip()[:160]
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test left a process running (a server, a supervisor, a worker).

    Every process a test starts lives under pytest's base temporary folder (its run
    directory, BentoML home or sandbox); a few seconds after the last test, none may remain.
    Those found are reported, then killed.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = str(factory.getbasetemp())
    deadline = time.monotonic() + 10
    leftovers = processes_using(base)
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.5)
        leftovers = processes_using(base)
    if not leftovers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {command}" for pid, command in sorted(leftovers.items())]
    message = "the tests left processes running:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_line(message, red=True)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
