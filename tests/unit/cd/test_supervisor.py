"""The supervisor's inputs: what a service may inherit, how programs are written, where they run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.cd import interpreters, supervisor
from scripts.cd.errors import DeployError
from scripts.cd.local_driver import check_environment_outlives_the_job
from scripts.cd.runtime import DriverSettings
from scripts.cd.supervisor import Program, Supervisor, service_env

CONSTRAINTS = Path(__file__).resolve().parents[3] / "requirements" / "constraints.txt"

JOB = {
    "PATH": "/usr/bin",
    "HOME": "/home/runner",
    "RUNNER_TRACKING_ID": "github_1234",
    "GITHUB_TOKEN": "ghs_secret",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "GITOPS_APP_KEY": "-----BEGIN",
}


def test_a_service_inherits_no_tracking_id_and_no_secret() -> None:
    env = service_env(JOB, {"GITOPS_ML_VARIANT": "champion"})
    assert env == {"PATH": "/usr/bin", "HOME": "/home/runner", "GITOPS_ML_VARIANT": "champion"}


def test_a_secret_passed_on_purpose_is_refused() -> None:
    with pytest.raises(DeployError, match="refusing to pass GH_TOKEN"):
        service_env(JOB, {"GH_TOKEN": "x"})


def test_program_sections_escape_what_supervisor_would_expand(tmp_path: Path) -> None:
    program = Program("nginx", ["nginx", "-g", "daemon off;"], {"A": "50%"}, tmp_path / "n.log")
    text = program.config()
    assert 'command=nginx -g "daemon off;"' in text
    assert 'environment=A="50%%"' in text
    assert "stopasgroup=true" in text
    assert "autorestart=true" in text


def test_socket_and_pidfile_live_in_the_run_directory() -> None:
    supervised = Supervisor(Path("/srv/gitops-ml/production"))
    config = supervised._config()
    assert "file=/srv/gitops-ml/production/supervisor/supervisord.sock\n" in config
    assert "serverurl=unix:///srv/gitops-ml/production/supervisor/supervisord.sock\n" in config
    assert "pidfile=/srv/gitops-ml/production/supervisor/supervisord.pid\n" in config
    assert "/tmp" not in config


def test_a_socket_path_too_long_is_named_from_the_supervisor_directory(tmp_path: Path) -> None:
    supervised = Supervisor(tmp_path / ("x" * 80) / "run" / "production")
    assert len(str(supervised.socket)) > 107
    assert supervised.socket.parent == supervised.directory  # the file stays there
    assert supervised.address == "/proc/self/cwd/supervisord.sock"
    assert "serverurl=unix:///proc/self/cwd/supervisord.sock\n" in supervised._config()


def test_a_socket_path_too_long_without_proc_says_what_to_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "CURRENT_DIRECTORY", tmp_path / "no-proc")
    supervised = Supervisor(tmp_path / ("x" * 80) / "run" / "production")
    length = len(str(supervised.socket))
    with pytest.raises(DeployError) as raised:
        _ = supervised.address
    assert str(supervised.socket) in str(raised.value)
    assert f"is {length} bytes" in str(raised.value)
    assert "GITOPS_ML_RUN_DIR" in str(raised.value)


def test_supervisord_is_pinned_as_in_the_constraints() -> None:
    pins = CONSTRAINTS.read_text(encoding="utf-8").splitlines()
    assert [pin for pin in pins if pin.startswith("supervisor==")] == [supervisor.REQUIREMENT]


@pytest.fixture
def fake_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A supervisor interpreter whose supervisord only records that it was started."""
    bin_dir = tmp_path / "interpreter" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("supervisord", "supervisorctl"):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho started >> {tmp_path / tool}.calls\n")
        script.chmod(0o755)
    calls: list[tuple[Path, str, list[str]]] = []

    def built(run_root: Path, name: str, requirements: list[str]) -> Path:
        calls.append((run_root, name, requirements))
        return bin_dir

    monkeypatch.setattr(interpreters, "for_requirements", built)
    monkeypatch.setattr(supervisor, "START_TIMEOUT_S", 0.3)
    return bin_dir


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose command line is supervisord's on the production config."""
    config = Supervisor(tmp_path / "run" / "production").config_path
    code = "import time; time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code, "supervisord", "-n", "-c", str(config)])
    deadline = time.monotonic() + 10
    # Its command line reads empty for a moment while it executes.
    while b"supervisord" not in Path(f"/proc/{process.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def test_a_pidfile_counts_only_for_a_live_supervisord_of_this_config(
    tmp_path: Path, impostor: subprocess.Popen[bytes]
) -> None:
    supervised = Supervisor(tmp_path / "run" / "production")
    supervised.directory.mkdir(parents=True)
    assert supervised.live_pid() is None  # no pidfile
    supervised.pid_path.write_text(f"{impostor.pid}\n")
    assert supervised.live_pid() == impostor.pid
    dead = subprocess.Popen(["true"])
    dead.wait()
    supervised.pid_path.write_text(f"{dead.pid}\n")
    assert supervised.live_pid() is None  # stale: after a reboot or a kill
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    supervised.pid_path.write_text(f"{unrelated.pid}\n")
    try:
        assert supervised.live_pid() is None  # the PID was reused by another program
    finally:
        unrelated.kill()
        unrelated.wait()
    other = Supervisor(tmp_path / "run" / "staging")
    other.directory.mkdir(parents=True)
    other.pid_path.write_text(f"{impostor.pid}\n")
    assert other.live_pid() is None  # another environment's config


def test_no_second_supervisord_starts_over_a_live_one_that_does_not_answer(
    tmp_path: Path, fake_interpreter: Path, impostor: subprocess.Popen[bytes]
) -> None:
    supervised = Supervisor(tmp_path / "run" / "production")
    supervised.directory.mkdir(parents=True)
    supervised.pid_path.write_text(f"{impostor.pid}\n")
    with pytest.raises(DeployError, match=rf"supervisord \(pid {impostor.pid}, .*not starting"):
        supervised.ensure_running()
    assert not (tmp_path / "supervisord.calls").exists()
    # The configuration and the stable link the boot unit starts from are in place.
    assert supervised.config_path.read_text().startswith("[unix_http_server]")
    assert supervised.bin.resolve() == fake_interpreter


def test_a_stale_pidfile_does_not_stop_a_start(tmp_path: Path, fake_interpreter: Path) -> None:
    supervised = Supervisor(tmp_path / "run" / "production")
    supervised.directory.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    supervised.pid_path.write_text(f"{dead.pid}\n")
    with pytest.raises(DeployError, match="did not start"):  # the fake never answers
        supervised.ensure_running()
    assert (tmp_path / "supervisord.calls").read_text() == "started\n"


def test_the_supervisor_interpreter_is_built_from_its_pin_in_the_run_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[Path, str, list[str]]] = []

    def record(run_root: Path, name: str, requirements: list[str]) -> Path:
        built.append((run_root, name, requirements))
        return tmp_path / "venv" / "bin"

    monkeypatch.setattr(interpreters, "for_requirements", record)
    supervised = Supervisor(tmp_path / "run" / "production")
    assert supervised.python == tmp_path / "venv" / "bin" / "python"
    assert built == [(tmp_path / "run", "supervisor", [supervisor.REQUIREMENT])]


def test_a_run_directory_inside_the_jobs_checkout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "work"))
    inside = DriverSettings.from_env({"GITOPS_ML_RUN_DIR": str(tmp_path / "work" / ".run")})
    with pytest.raises(DeployError, match=r"inside the job's checkout.*GITOPS_ML_RUN_DIR"):
        check_environment_outlives_the_job(inside)
    outside = DriverSettings.from_env({"GITOPS_ML_RUN_DIR": str(tmp_path / "run")})
    assert check_environment_outlives_the_job(outside) is None
