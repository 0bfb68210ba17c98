"""Survive a reboot: a systemd unit per environment starts its supervisord at boot.

A deploy starts an environment's supervisord (:mod:`scripts.cd.supervisor`) when it finds
none running, and supervisord restarts every program that exits — but nothing starts
supervisord itself after a reboot. ``python -m scripts.host setup`` installs, for each
environment, a unit ``gitops-ml-<env>.service`` that runs that supervisord in the
foreground (``supervisord -n``) on the configuration every deploy writes, from the stable
link to its own interpreter, in the supervisor directory. The deploy then finds it running
and uses it; it never starts a second one.

Two kinds, for the user the deploy runner runs as:

* a **user unit** (``~/.config/systemd/user``, ``WantedBy=default.target``), with
  lingering (``loginctl enable-linger``) so the user's units start at boot without a login;
* a **system unit** (``/etc/systemd/system``, ``User=``, ``WantedBy=multi-user.target``),
  installed as root for that user.

The unit starts nothing before the first deploy (``ConditionPathExists=`` on the
configuration), carries no secret (only the run directory and a standard ``PATH``), and is
not restarted after a clean exit (``python -m scripts.deploy down`` stops it for good).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.cd.errors import DeployError
from scripts.cd.runtime import DEFAULT_RUN_ROOT
from scripts.cd.supervisor import Supervisor

PREFIX = "gitops-ml-"
SYSTEM_UNITS = Path("/etc/systemd/system")
# systemd's own default for services: the services' programs carry their own PATH.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Longer than supervisord's own stopwaitsecs (30 s) for each program.
STOP_TIMEOUT_S = 90
ENVIRONMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Present when systemd is the running init (what sd_booted(3) checks).
BOOTED = Path("/run/systemd/system")


@dataclass(frozen=True)
class Unit:
    """The boot unit of one environment.

    Attributes:
        environment: ``staging``, ``production``, ...
        run_root: ``GITOPS_ML_RUN_DIR`` of the deploy runner (absolute).
        user: The service user of a system unit; None for a user unit.
    """

    environment: str
    run_root: Path
    user: str | None = None

    @property
    def name(self) -> str:
        """``gitops-ml-<env>.service``."""
        return f"{PREFIX}{self.environment}.service"

    @property
    def supervisor(self) -> Supervisor:
        """The environment's supervisor (its paths: no process runs)."""
        return Supervisor(self.run_root / self.environment)

    def path(self, home: Path) -> Path:
        """Where the unit file goes (``home``: the user's, for a user unit)."""
        folder = SYSTEM_UNITS if self.user else home / ".config/systemd/user"
        return folder / self.name

    def render(self) -> str:
        """The unit file."""
        supervisor = self.supervisor
        command = [str(supervisor.bin / "supervisord"), "-n", "-c", str(supervisor.config_path)]
        environment = {
            "GITOPS_ML_RUN_DIR": str(self.run_root),
            "PATH": PATH,
            "BENTOML_DO_NOT_TRACK": "true",
        }
        lines = [
            "# Written by `python -m scripts.host setup` (docs/deploy-host.md).",
            "[Unit]",
            f"Description=gitops-ml {self.environment}: the environment's supervisord "
            "(variants, nginx, Prometheus, alerting)",
            # Nothing to start before the first deploy writes the configuration.
            f"ConditionPathExists={_path(supervisor.config_path)}",
        ]
        if self.user:  # a system unit (a user manager has no network-online.target)
            lines += ["After=network-online.target", "Wants=network-online.target"]
        lines += [
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={' '.join(_word(part.replace('$', '$$')) for part in command)}",
            # The control socket may be named from there (Supervisor.address).
            f"WorkingDirectory={_path(supervisor.directory)}",
            *(f"Environment={_word(f'{key}={value}')}" for key, value in environment.items()),
            "Restart=on-failure",
            "RestartSec=5",
            # SIGTERM to supervisord alone: it stops its programs' process groups itself.
            "KillMode=mixed",
            f"TimeoutStopSec={STOP_TIMEOUT_S}",
        ]
        if self.user:
            lines.append(f"User={self.user}")
        target = "multi-user.target" if self.user else "default.target"
        lines += ["", "[Install]", f"WantedBy={target}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Setup:
    """What preparing a deploy host writes and runs."""

    units: dict[Path, str]
    commands: list[list[str]]


def plan(
    environments: Sequence[str], run_root: Path, user: str | None, home: Path, login: str
) -> Setup:
    """The unit files and commands that make ``environments`` start at boot.

    Args:
        environments: The environments this host serves.
        run_root: ``GITOPS_ML_RUN_DIR`` of the deploy runner.
        user: The service user of system units; None for user units.
        home: The home of the user whose user units these are.
        login: That user's name (lingering is enabled for it).

    Raises:
        DeployError: On an environment name systemd or the deploy would not accept, or a
            relative run directory.
    """
    bad = [name for name in environments if not ENVIRONMENT_NAME.fullmatch(name)]
    if bad or not environments:
        raise DeployError(
            f"--env: expected environment names like staging (a-z, 0-9, -, _), got {bad or []}"
        )
    if not run_root.is_absolute():
        raise DeployError(f"the run directory must be absolute, got {run_root}")
    units = [Unit(name, run_root, user) for name in dict.fromkeys(environments)]
    names = [unit.name for unit in units]
    scope = [] if user else ["--user"]
    commands = [] if user else [["loginctl", "enable-linger", login]]
    commands += [
        ["systemctl", *scope, "daemon-reload"],
        ["systemctl", *scope, "enable", *names],
    ]
    return Setup({unit.path(home): unit.render() for unit in units}, commands)


def default_run_root(user: str | None, environ: Mapping[str, str]) -> Path:
    """``GITOPS_ML_RUN_DIR``, else the service user's default (``~/.local/state/gitops-ml``).

    Raises:
        DeployError: When the service user does not exist.
    """
    if environ.get("GITOPS_ML_RUN_DIR"):
        return Path(environ["GITOPS_ML_RUN_DIR"]).absolute()
    if user is None:
        return DEFAULT_RUN_ROOT
    return home_of(user) / DEFAULT_RUN_ROOT.relative_to(Path.home())


def home_of(user: str) -> Path:
    """A user's home directory.

    Raises:
        DeployError: When there is no such user.
    """
    try:
        return Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        raise DeployError(f"--user: no user named {user} on this host (create it first)") from None


def check_systemd(system: bool) -> None:
    """Check that systemd runs this host, and that a system unit is installed as root.

    Raises:
        DeployError: Saying what is missing.
    """
    if shutil.which("systemctl") is None or not BOOTED.is_dir():
        raise DeployError(
            f"systemd is not running on this host (no systemctl or no {BOOTED}): nothing "
            "would start the environments at boot; use a host with systemd, or start them "
            "another way (docs/deploy-host.md)"
        )
    if system and os.geteuid() != 0:
        raise DeployError("--system writes to /etc/systemd/system: run it as root (sudo)")


def install(setup: Setup, system: bool, dry_run: bool) -> None:
    """Write the units and run the commands; with ``dry_run`` only print them.

    Raises:
        DeployError: When systemd is missing (unless ``dry_run``) or a command fails.
    """
    if not dry_run:
        check_systemd(system)
    for path, text in setup.units.items():
        if dry_run:
            print(f"host: would write {path}:\n{text}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"host: wrote {path}")
    for command in setup.commands:
        if dry_run:
            print(f"host: would run {' '.join(command)}")
            continue
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise DeployError(f"{' '.join(command)} exited {result.returncode}: {output}")
        print(f"host: ran {' '.join(command)}")


def _path(path: Path) -> str:
    """A path in a unit file: ``%`` would start a specifier."""
    return str(path).replace("%", "%%")


def _word(value: str) -> str:
    """One word of ``ExecStart=`` or ``Environment=``: quoted when it holds a space."""
    escaped = value.replace("%", "%%")
    if re.search(r"[\s\"'\\]", value):
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped
