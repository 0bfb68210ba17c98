"""Processes the local driver starts and stops: daemons in their own session, loopback ports."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int | None) -> bool:
    """Whether a process with this PID exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(") ")[-1].startswith("Z"))


def stop(pid: int | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """Terminate a process group, then kill it if it lingers."""
    if pid is None or not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


def spawn(command: list[str], env: dict[str, str], log: Path) -> int:
    """Start a daemon in its own session, not as our child (no zombie, no Popen to reap).

    Returns:
        Its PID, which is also its process group id.
    """
    script = f"setsid {shlex.join(command)} >>{shlex.quote(str(log))} 2>&1 </dev/null & echo $!"
    started = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return int(started.stdout.strip())


@contextmanager
def running_process(
    command: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child process for the duration of the block; terminate it (then kill) after."""
    with ExitStack() as stack:
        output = stack.enter_context(log.open("w")) if log else None
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=output)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
