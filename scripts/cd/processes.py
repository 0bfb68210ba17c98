"""Loopback ports (a free one, who listens on one) and short-lived child processes.

Long-running services: :mod:`scripts.cd.supervisor`.
"""

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


# /proc/net/tcp's state of a listening socket (include/net/tcp_states.h: TCP_LISTEN = 10).
TCP_LISTEN = "0A"


def listening_sockets(port: int) -> set[str]:
    """The ``socket:[inode]`` links of the TCP sockets listening on ``port`` (any address)."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
            # timeout inode (proc_net_tcp.rst); addresses and ports are hex.
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{inode}]")
    return found


def _holds(pid: Path, sockets: set[str]) -> bool:
    try:
        descriptors = list((pid / "fd").iterdir())
    except OSError:  # another user's process, or it exited meanwhile
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in sockets:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def listening_pids(port: int) -> list[int]:
    """The processes that hold a TCP socket listening on ``port``, in PID order.

    Read from ``/proc``: the socket inodes of ``net/tcp`` and ``net/tcp6``, then every
    process's file descriptors; without privileges other users' processes stay unseen.
    """
    sockets = listening_sockets(port)
    if not sockets:
        return []
    pids = (path for path in Path("/proc").iterdir() if path.name.isdigit())
    return sorted(int(pid.name) for pid in pids if _holds(pid, sockets))


COMMAND_LINE_MAX = 200


def command_line(pid: int) -> str:
    """A process's command line on one line, shortened; its name when it has none.

    "" once the process exited.
    """
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        # NUL-separated, and an argument may hold newlines: one line, for a one-line error.
        line = " ".join(arguments.replace("\0", " ").split())
        line = line or Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
    return line if len(line) <= COMMAND_LINE_MAX else line[: COMMAND_LINE_MAX - 3] + "..."


def parent_pid(pid: int) -> int | None:
    """A process's parent PID, None once it exited."""
    try:
        # The fields after the command, which is in parentheses that may hold ")".
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def port_owner(port: int) -> str:
    """Who listens on a TCP ``port``, for an error message: ``pid 1234 `python -m ...```.

    Processes that share the socket with their parent (nginx's workers, forked servers)
    are left out; "nothing listens" or "unknown owner" (another user's process) otherwise.
    """
    if not listening_sockets(port):
        return "nothing listens"
    pids = listening_pids(port)
    owners = [pid for pid in pids if parent_pid(pid) not in pids]
    if not owners:
        return "unknown owner"
    return ", ".join(f"pid {pid} `{command_line(pid)}`" for pid in owners)
