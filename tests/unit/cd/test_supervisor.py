"""The supervisor's inputs: what a service may inherit, how programs are written, where they run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts.cd.errors import DeployError
from scripts.cd.local_driver import check_environment_outlives_the_job
from scripts.cd.supervisor import Program, Supervisor, service_env

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


def test_the_control_socket_path_fits_a_unix_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 80) / "run" / "production"
    assert len(str(Supervisor(deep).socket)) < 108


def test_services_never_run_from_the_jobs_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(Path(sys.prefix).parent))
    with pytest.raises(DeployError, match="inside the job's checkout"):
        check_environment_outlives_the_job()
    monkeypatch.setenv("GITHUB_WORKSPACE", "/somewhere/else")
    check_environment_outlives_the_job()  # returns: the venv is outside that checkout
