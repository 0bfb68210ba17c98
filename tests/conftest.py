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


def pytest_configure(config: pytest.Config) -> None:
    """Keep BentoML's store and telemetry away from the user's home.

    Set before any test imports bentoml, which reads BENTOML_HOME once.
    """
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="gitops-ml-bentoml-")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"


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
