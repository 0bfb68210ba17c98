"""The boot units: what they run, for whom, and that systemd accepts them."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.exit_codes import ExitCode
from scripts import host
from scripts.cd import systemd
from scripts.cd.errors import DeployError
from scripts.cd.supervisor import SECRET_NAME, Supervisor
from scripts.cd.systemd import Unit, plan

RUN_ROOT = Path("/home/runner/.local/state/gitops-ml")
VENV_BIN = Path(sys.executable).parent


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values]}}`` of a unit file (a key may repeat: Environment=)."""
    found: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            found[section] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[section].setdefault(key, []).append(value)
    return found


def test_a_user_unit_runs_the_supervisord_the_deploy_configures() -> None:
    unit = directives(Unit("production", RUN_ROOT).render())
    supervised = Supervisor(RUN_ROOT / "production")
    service = unit["Service"]
    assert service["ExecStart"] == [
        f"{supervised.bin}/supervisord -n -c {supervised.config_path}"  # foreground, same file
    ]
    assert service["Type"] == ["simple"]
    assert service["Restart"] == ["on-failure"]
    assert service["WorkingDirectory"] == [str(supervised.directory)]
    assert "User" not in service
    assert unit["Install"]["WantedBy"] == ["default.target"]
    assert unit["Unit"]["ConditionPathExists"] == [str(supervised.config_path)]
    assert "After" not in unit["Unit"]  # a user manager has no network-online.target


def test_a_unit_passes_the_run_directory_and_no_secret() -> None:
    environment = directives(Unit("staging", RUN_ROOT).render())["Service"]["Environment"]
    names = [assignment.partition("=")[0] for assignment in environment]
    assert f"GITOPS_ML_RUN_DIR={RUN_ROOT}" in environment
    assert "PATH" in names
    assert not [name for name in names if SECRET_NAME.search(name)]


def test_a_system_unit_runs_as_the_service_user_at_boot() -> None:
    unit = Unit("production", Path("/srv/gitops-ml"), user="gitops")
    values = directives(unit.render())
    assert values["Service"]["User"] == ["gitops"]
    assert values["Install"]["WantedBy"] == ["multi-user.target"]
    assert values["Unit"]["After"] == ["network-online.target"]
    assert unit.path(Path("/home/anyone")) == Path(
        "/etc/systemd/system/gitops-ml-production.service"
    )


def test_paths_with_spaces_and_percent_signs_are_quoted_for_systemd() -> None:
    service = directives(Unit("production", Path("/srv/my run/100%")).render())["Service"]
    assert service["ExecStart"][0].startswith('"/srv/my run/100%%/production/supervisor/bin/')
    assert '"GITOPS_ML_RUN_DIR=/srv/my run/100%%"' in service["Environment"]


def test_user_units_linger_and_system_units_do_not() -> None:
    user = plan(["staging", "production", "staging"], RUN_ROOT, None, Path("/home/r"), "r")
    names = ["gitops-ml-staging.service", "gitops-ml-production.service"]
    assert list(user.units) == [Path("/home/r/.config/systemd/user", name) for name in names]
    assert user.commands == [
        ["loginctl", "enable-linger", "r"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", *names],
    ]
    system = plan(["production"], RUN_ROOT, "gitops", Path("/root"), "root")
    assert list(system.units) == [Path("/etc/systemd/system/gitops-ml-production.service")]
    assert system.commands == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "gitops-ml-production.service"],
    ]


@pytest.mark.parametrize("env", ["Production", "prod/x", "", "-x"])
def test_a_bad_environment_name_is_refused(env: str) -> None:
    with pytest.raises(DeployError, match="--env: expected environment names"):
        plan([env], RUN_ROOT, None, Path("/home/r"), "r")


def test_the_run_directory_defaults_to_the_setting_then_the_service_users_home() -> None:
    assert systemd.default_run_root("root", {"GITOPS_ML_RUN_DIR": "/srv/run"}) == Path("/srv/run")
    home = Path(os.path.expanduser(f"~{getpass.getuser()}"))
    assert systemd.default_run_root(getpass.getuser(), {}) == home / ".local/state/gitops-ml"
    with pytest.raises(DeployError, match="no user named no-such-user-x"):
        systemd.default_run_root("no-such-user-x", {})


def verify(unit_file: Path, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` (no running systemd needed)."""
    runtime = tmp_path / "xdg-runtime"  # a user manager's, which --user needs
    runtime.mkdir(exist_ok=True)
    command = ["systemd-analyze", "verify", "--man=no", "--generators=no"]
    return subprocess.run(
        [*command, *(["--user"] if user else []), str(unit_file)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("user", [None, getpass.getuser()], ids=["user-unit", "system-unit"])
def test_systemd_accepts_the_units(tmp_path: Path, user: str | None) -> None:
    unit = Unit("production", tmp_path / "run", user=user)
    unit_file = tmp_path / unit.name
    unit_file.write_text(unit.render(), encoding="utf-8")
    missing = verify(unit_file, user is None, tmp_path)
    assert missing.returncode != 0  # verify checks the supervisord it would run
    assert "is not executable" in missing.stderr
    # What a deploy leaves behind: the link to the supervisor interpreter, the config.
    unit.supervisor.directory.mkdir(parents=True)
    unit.supervisor.bin.symlink_to(VENV_BIN)
    result = verify(unit_file, user is None, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # verify reports bad directives as warnings only


def test_dry_run_prints_the_units_and_commands_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    run = tmp_path / "run"
    code = host.main(["setup", "--env", "production", "--run-dir", str(run), "--dry-run"])
    output = capsys.readouterr().out
    assert code == ExitCode.OK
    unit = tmp_path / ".config/systemd/user/gitops-ml-production.service"
    assert f"would write {unit}:" in output
    assert f"-n -c {run}/production/supervisor/supervisord.conf" in output
    assert f"would run loginctl enable-linger {getpass.getuser()}" in output
    assert "would run systemctl --user enable gitops-ml-production.service" in output
    assert not (tmp_path / ".config").exists()


def test_setup_without_systemd_fails_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(systemd, "BOOTED", tmp_path / "no-systemd")
    code = host.main(["setup", "--env", "production", "--run-dir", str(tmp_path / "run")])
    assert code == ExitCode.FOUND_PROBLEM
    assert "systemd is not running on this host" in capsys.readouterr().err
    assert not (tmp_path / ".config").exists()


def test_system_units_need_their_user() -> None:
    with pytest.raises(SystemExit) as usage:
        host.main(["setup", "--env", "production", "--system"])
    assert usage.value.code == 2
