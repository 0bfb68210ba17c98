"""The local driver's process supervisor: one supervisord per environment, outside any job.

A GitHub runner ends every job by killing each process whose environment carries the
job's ``RUNNER_TRACKING_ID``, whatever its session or parent (actions/runner
``src/Runner.Worker/JobExtension.cs``): a service a job starts dies with the job. So no job
runs a service itself. The environment's supervisord (`supervisor` from PyPI, a real,
long-maintained process supervisor) is started once with a clean environment — no
``RUNNER_TRACKING_ID``, no token, no secret (:func:`service_env`) — daemonizes, and owns
every long-running process of the environment: each variant, nginx and Prometheus. It
restarts a program that exits (``autorestart``); variants run under
:mod:`scripts.cd.reaper`, so stopping or restarting one leaves none of its processes
behind. Where systemd runs (a runner with ``systemctl --user`` and lingering), the same
programs map one-to-one to ``systemd-run --user`` units; this platform has no systemd.

Configuration, socket, logs: ``<run dir>/<env>/supervisor/``. Programs are files in
``programs/`` applied with ``supervisorctl update``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.cd.errors import DeployError
from scripts.cd.processes import alive

START_TIMEOUT_S = 20.0
# What a service may inherit from the job that (re)starts its supervisor: nothing secret.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "BENTOML_DO_NOT_TRACK")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY|CREDENTIAL|KUBECONFIG", re.IGNORECASE)


def service_env(
    environ: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A long-running service's environment: a few inherited basics plus ``extra``.

    Never ``RUNNER_TRACKING_ID`` (the runner would kill the service at job end) and never a
    variable whose name looks secret, even when passed in ``extra``.

    Raises:
        DeployError: When ``extra`` carries a secret-looking name.
    """
    secret = sorted(name for name in (extra or {}) if SECRET_NAME.search(name))
    if secret:
        raise DeployError(f"refusing to pass {', '.join(secret)} to a long-running service")
    env = {name: environ[name] for name in INHERITED if name in environ}
    return {**env, **(extra or {})}


@dataclass(frozen=True)
class Program:
    """One supervised program."""

    name: str
    command: list[str]
    env: Mapping[str, str]
    log: Path
    directory: Path | None = None
    stop_signal: str = "TERM"

    def config(self) -> str:
        """Its ``[program:x]`` section."""
        quoted = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(self.env.items()))
        lines = [
            f"[program:{self.name}]",
            f"command={' '.join(_argument(part) for part in self.command)}",
            f"environment={quoted}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=10",
            f"stopsignal={self.stop_signal}",
            "stopwaitsecs=30",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_escape(str(self.log))}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=3",
        ]
        if self.directory is not None:
            lines.append(f"directory={_escape(str(self.directory))}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("%", "%%").replace('"', '\\"')


def _argument(value: str) -> str:
    escaped = _escape(value)
    return f'"{escaped}"' if re.search(r"[\s;\"']", value) else escaped


class Supervisor:
    """The supervisord of one environment's run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.directory = run_dir / "supervisor"

    @property
    def config_path(self) -> Path:
        """supervisord.conf."""
        return self.directory / "supervisord.conf"

    @property
    def socket(self) -> Path:
        """Its control socket, in a private folder of the temporary directory.

        Named after the run directory: a Unix socket path is limited to 107 bytes.
        """
        folder = Path(tempfile.gettempdir()) / f"gitops-ml-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.sha256(str(self.directory.resolve()).encode()).hexdigest()[:16]
        return folder / f"supervisor-{digest}.sock"

    def _config(self) -> str:
        d = self.directory
        return f"""[unix_http_server]
file={_escape(str(self.socket))}
chmod=0700

[supervisord]
logfile={_escape(str(d / "supervisord.log"))}
pidfile={_escape(str(d / "supervisord.pid"))}
childlogdir={_escape(str(d))}
directory={_escape(str(d))}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_escape(str(self.socket))}

[include]
files = {_escape(str(d / "programs"))}/*.conf
"""

    def install(self, script: Path) -> Path:
        """A copy of ``script`` (standard library only) beside the config; its path.

        Programs must not run code from a job's checkout: the next job's checkout deletes
        it (``git clean -ffdx``), and supervisord could no longer restart them.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / script.name
        source = script.read_bytes()
        if not target.is_file() or target.read_bytes() != source:
            temporary = target.with_suffix(".tmp")
            temporary.write_bytes(source)
            temporary.replace(target)
        return target

    def install_reaper(self) -> Path:
        """A copy of :mod:`scripts.cd.reaper` beside the config (see :meth:`install`)."""
        from scripts.cd import reaper

        return self.install(Path(reaper.__file__))

    def ctl(self, *args: str, check: bool = True) -> str:
        """``supervisorctl ARGS``; its output.

        Raises:
            DeployError: When it fails and ``check``.
        """
        result = subprocess.run(
            [_tool("supervisorctl"), "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        output = (result.stdout + result.stderr).strip()
        if check and result.returncode != 0:
            raise DeployError(f"supervisorctl {' '.join(args)}: {output}")
        return output

    def running(self) -> bool:
        """Whether supervisord answers on its socket."""
        if not self.socket.exists():
            return False
        result = subprocess.run(
            [_tool("supervisorctl"), "-c", str(self.config_path), "pid"],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0 and result.stdout.strip().isdigit()

    def ensure_running(self) -> None:
        """Start supervisord (daemonized, clean environment) unless it runs already.

        Raises:
            DeployError: When it does not answer in time.
        """
        (self.directory / "programs").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config(), encoding="utf-8")
        if self.running():
            return
        subprocess.run(
            [_tool("supervisord"), "-c", str(self.config_path)],
            env=service_env(os.environ),
            # The daemon must not hold our pipes open.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            cwd=self.directory,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.running():
            if time.monotonic() > deadline:
                log = self.directory / "supervisord.log"
                tail = log.read_text(encoding="utf-8")[-800:] if log.is_file() else ""
                raise DeployError(f"supervisord did not start in {START_TIMEOUT_S:.0f} s: {tail}")
            time.sleep(0.1)

    def add(self, program: Program) -> int:
        """Write ``program``'s file and start it; its main PID once running.

        Raises:
            DeployError: When it does not reach RUNNING.
        """
        self.ensure_running()
        path = self.directory / "programs" / f"{program.name}.conf"
        path.write_text(program.config(), encoding="utf-8")
        self.ctl("update", program.name)
        return self.wait_running(program.name)

    def remove(self, name: str) -> None:
        """Stop ``name`` (its whole process group) and forget it."""
        (self.directory / "programs" / f"{name}.conf").unlink(missing_ok=True)
        if self.running():
            self.ctl("update", name, check=False)

    def states(self) -> dict[str, tuple[str, int | None]]:
        """Every program's state (RUNNING, STARTING, BACKOFF, EXITED, ...) and PID."""
        if not self.running():
            return {}
        output = self.ctl("status", check=False)
        found: dict[str, tuple[str, int | None]] = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isupper():
                pid = re.search(r"pid (\d+)", line)
                found[parts[0]] = (parts[1], int(pid[1]) if pid else None)
        return found

    def pid(self, name: str) -> int | None:
        """The program's main PID while it runs."""
        state, pid = self.states().get(name, ("UNKNOWN", None))
        return pid if state == "RUNNING" else None

    def wait_running(self, name: str, timeout: float = START_TIMEOUT_S) -> int:
        """Wait until ``name`` is RUNNING; its PID.

        Raises:
            DeployError: When it is not within ``timeout`` (FATAL, BACKOFF...).
        """
        deadline = time.monotonic() + timeout
        while True:
            state, pid = self.states().get(name, ("UNKNOWN", None))
            if state == "RUNNING" and pid:
                return pid
            if state == "FATAL" or time.monotonic() > deadline:
                raise DeployError(f"{name} is {state} under supervisord ({self.directory})")
            time.sleep(0.1)

    def signal(self, name: str, signal_name: str) -> None:
        """Send a signal to a program (e.g. HUP: nginx reloads its configuration)."""
        self.ctl("signal", signal_name, name)

    def shutdown(self, forget: bool = False) -> None:
        """Stop every program and supervisord itself; ``forget``: delete their files too.

        Without ``forget`` the program files stay, so the next supervisord starts the same
        services on the same ports (a rebooted machine comes back as it was).
        """
        if forget:
            for program in (self.directory / "programs").glob("*.conf"):
                program.unlink()
        if not self.running():
            return
        pid_file = self.directory / "supervisord.pid"
        pid = int(pid_file.read_text()) if pid_file.is_file() else None
        self.ctl("shutdown", check=False)
        deadline = time.monotonic() + 60
        while pid and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _tool(name: str) -> str:
    """supervisord/supervisorctl of this interpreter's environment."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else name
