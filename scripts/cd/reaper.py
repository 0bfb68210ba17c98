"""Run a command as its whole process tree: ``python -m scripts.cd.reaper -- COMMAND...``.

The supervisor (:mod:`scripts.cd.supervisor`) stops a program by signalling its process
group, but ``bentoml serve`` starts its workers with circus, which puts each worker in a
session of its own (``os.setsid`` in circus ``process.py``): killing the server left its
workers running, reparented to init. This wrapper makes itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``, Linux >= 3.4): every orphan of the tree is reparented
to it instead of init. It forwards SIGTERM, SIGINT and SIGHUP to the command; when the
command exits, for any reason, it terminates every process still in the tree (SIGTERM,
then SIGKILL after ``--grace`` seconds) and exits with the command's status, so the
supervisor sees the program end and restarts it with nothing left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def become_subreaper() -> None:
    """Orphans of this process's tree are reparented here, not to init.

    Raises:
        OSError: When the kernel refuses (not Linux, or too old).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the command in parentheses, which may contain spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    pending, found = children(pid), []
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children(current))
    return found


def reap() -> None:
    """Collect every exited child (orphans included) without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def terminate_tree(grace: float) -> None:
    """SIGTERM everything below this process, then SIGKILL what outlives ``grace``."""
    me = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in descendants(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            reap()
            if not descendants(me):
                return
            time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status once its whole tree is gone."""
    parser = argparse.ArgumentParser(prog="python -m scripts.cd.reaper", description=__doc__)
    parser.add_argument("--grace", type=float, default=20.0, help="seconds before SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    become_subreaper()
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    status = child.wait()
    terminate_tree(args.grace)
    reap()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
