"""Loopback ports and short-lived child processes (services: :mod:`scripts.cd.supervisor`)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

STOP_TIMEOUT_S = 20.0


def alive(pid: int | None) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    try:
        # The state follows the command, in parentheses that may hold spaces or ")".
        return status.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
