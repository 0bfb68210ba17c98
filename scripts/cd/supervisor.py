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
behind.

supervisord runs from its own interpreter (:func:`scripts.cd.interpreters.for_requirements`
with :data:`REQUIREMENT`), never from the venv jobs install into: a dependency change merged
for the jobs does not reach the production supervisor. ``<supervisor dir>/bin`` links to it,
a path that stays put when the pin changes.

Everything lives in ``<run dir>/<env>/supervisor/``: configuration, control socket, pidfile,
logs; programs are files in ``programs/`` applied with ``supervisorctl update``. Nothing is
in ``/tmp``, which several distributions clean by age. A reboot is survived by a systemd
unit that runs the same supervisord on the same configuration in the foreground
(:mod:`scripts.cd.systemd`, ``python -m scripts.host setup``); a deploy that finds it
running uses it, one that finds none starts it daemonized (:meth:`Supervisor.ensure_running`).
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.cd import interpreters
from scripts.cd.errors import DeployError
from scripts.cd.processes import alive

START_TIMEOUT_S = 20.0
# supervisord's own pin: requirements/constraints.txt's (a unit test keeps them equal).
REQUIREMENT = "supervisor==4.3.0"
# A Unix socket path holds at most 107 bytes, and supervisord first binds "<path>.<pid>"
# (a PID has at most 7 digits), then hard-links it to the path.
SOCKET_PATH_MAX = 107 - len(".4194304")
# Where a path too long for a socket is reached from: supervisord's and supervisorctl's
# working directory, which is the supervisor directory for both (see Supervisor.address).
CURRENT_DIRECTORY = Path("/proc/self/cwd")
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
    """The supervisord of one environment's run directory (``<run root>/<env>``)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.absolute()
        self.directory = self.run_dir / "supervisor"
        self._bin: Path | None = None

    @property
    def config_path(self) -> Path:
        """supervisord.conf: what the deploy and the boot unit both start supervisord with."""
        return self.directory / "supervisord.conf"

    @property
    def pid_path(self) -> Path:
        """supervisord.pid."""
        return self.directory / "supervisord.pid"

    @property
    def socket(self) -> Path:
        """Its control socket."""
        return self.directory / "supervisord.sock"

    @property
    def bin(self) -> Path:
        """The stable link to its interpreter's ``bin`` (what the boot unit runs)."""
        return self.directory / "bin"

    @property
    def address(self) -> str:
        """The socket as the configuration names it.

        Its path when that fits a Unix socket; else the same file reached through the
        working directory, ``/proc/self/cwd/supervisord.sock``: supervisord, started by
        :meth:`ensure_running` or by the boot unit, and supervisorctl (:meth:`ctl`) all run
        in the supervisor directory. (supervisord makes a relative ``file=`` absolute, so a
        relative path would not help.)

        Raises:
            DeployError: When the path is too long and there is no ``/proc``.
        """
        path = str(self.socket)
        if len(path.encode()) <= SOCKET_PATH_MAX:
            return path
        if CURRENT_DIRECTORY.is_dir():
            return str(CURRENT_DIRECTORY / self.socket.name)
        raise DeployError(
            f"supervisord's control socket {path} is {len(path.encode())} bytes, over the "
            f"{SOCKET_PATH_MAX} a Unix socket path allows here: set GITOPS_ML_RUN_DIR to a "
            f"shorter folder than {self.run_dir.parent}"
        )

    @property
    def python(self) -> Path:
        """The supervisor interpreter's Python (standard library programs may run on it)."""
        return self._interpreter() / "python"

    def _interpreter(self) -> Path:
        if self._bin is None:
            self._bin = interpreters.for_requirements(
                self.run_dir.parent, "supervisor", [REQUIREMENT]
            )
        return self._bin

    def _tool(self, name: str) -> str:
        return str(self._interpreter() / name)

    def _config(self) -> str:
        d = self.directory
        address = _escape(self.address)
        return f"""[unix_http_server]
file={address}
chmod=0700

[supervisord]
logfile={_escape(str(d / "supervisord.log"))}
pidfile={_escape(str(self.pid_path))}
childlogdir={_escape(str(d))}
directory={_escape(str(d))}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{address}

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
        result = self._ctl(*args)
        output = (result.stdout + result.stderr).strip()
        if check and result.returncode != 0:
            raise DeployError(f"supervisorctl {' '.join(args)}: {output}")
        return output

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._tool("supervisorctl"), "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,  # the socket may be named from here (see address)
        )

    def running(self) -> bool:
        """Whether supervisord answers on its socket."""
        if not self.socket.exists():
            return False
        result = self._ctl("pid")
        return result.returncode == 0 and result.stdout.strip().isdigit()

    def live_pid(self) -> int | None:
        """The pidfile's PID while it is a live supervisord of this configuration.

        None for a stale pidfile (a reboot, a kill): its PID is dead or another program's.
        """
        try:
            pid = int(self.pid_path.read_text(encoding="utf-8").strip())
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        names = {os.fsdecode(argument) for argument in arguments}
        supervisord = any(Path(name).name == "supervisord" for name in names)
        configured = str(self.config_path) in names or any(
            name.endswith(self.config_path.name) and _same_file(Path(name), self.config_path)
            for name in names
        )
        return pid if supervisord and configured and alive(pid) else None

    def ensure_running(self) -> None:
        """Start supervisord (daemonized, clean environment) unless it runs already.

        It runs already when the boot unit started it (:mod:`scripts.cd.systemd`). Never a
        second one: a live supervisord of this configuration that does not answer on its
        socket is waited for, then reported.

        Raises:
            DeployError: When it does not answer in time, or another one does not answer.
        """
        (self.directory / "programs").mkdir(parents=True, exist_ok=True)
        self._link_interpreter()
        # The boot unit starts from this file: never leave a half-written one.
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(self._config(), encoding="utf-8")
        temporary.replace(self.config_path)
        with (self.directory / "start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two applies of one environment start one
            if self.running():
                return
            pid = self.live_pid()
            if pid is not None:
                # Started but not answering yet (the boot unit, a moment ago), or stuck.
                if self._wait_running():
                    return
                raise DeployError(
                    f"supervisord (pid {pid}, {self.config_path}) is running but does not "
                    f"answer on {self.socket} after {START_TIMEOUT_S:.0f} s; not starting a "
                    f"second one: see {self.directory / 'supervisord.log'}, stop it "
                    f"(kill {pid}), then deploy again"
                )
            subprocess.run(
                [self._tool("supervisord"), "-c", str(self.config_path)],
                # The boot unit's environment (scripts.cd.systemd), nothing else.
                env=service_env(os.environ, {"GITOPS_ML_RUN_DIR": str(self.run_dir.parent)}),
                # The daemon must not hold our pipes open.
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
                cwd=self.directory,  # the socket may be named from here (see address)
            )
            if not self._wait_running():
                log = self.directory / "supervisord.log"
                tail = log.read_text(encoding="utf-8")[-800:] if log.is_file() else ""
                raise DeployError(f"supervisord did not start in {START_TIMEOUT_S:.0f} s: {tail}")

    def _wait_running(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _link_interpreter(self) -> None:
        """Point :attr:`bin` at the interpreter of :data:`REQUIREMENT` (atomically)."""
        target = self._interpreter()
        if self.bin.is_symlink() and Path(os.readlink(self.bin)) == target:
            return
        temporary = self.bin.with_name("bin.tmp")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target, target_is_directory=True)
        temporary.replace(self.bin)

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
        pid = self.live_pid()
        self.ctl("shutdown", check=False)
        deadline = time.monotonic() + 60
        while pid and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False
