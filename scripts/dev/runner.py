"""What a GitHub Actions runner does at a job boundary, for the act harness (scripts.dev.act).

**Orphan-process cleanup.** The runner gives every job a ``RUNNER_TRACKING_ID``; at
"Complete job" it terminates every process whose environment carries it, whatever its
session or parent (actions/runner ``src/Runner.Worker/JobExtension.cs``, "Cleaning up
orphan processes"; real logs show ``Terminate orphan process: pid (4823) (python)``). A
``setsid``/``nohup`` child of a step dies with the job; only a process started without the
variable — by a supervisor outside the job, or with the variable removed (the workaround
of actions/runner#598) — survives.

act in host mode sets ``RUNNER_TRACKING_ID`` to an empty string and cleans nothing up. The
harness passes one id per act invocation (``--env RUNNER_TRACKING_ID=github_<uuid>``); act
sets ``GITHUB_JOB`` per job, so a job is identified by the pair, and :func:`cleanup_job`
terminates exactly what the runner would at the end of that job.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def new_tracking_id() -> str:
    """A fresh tracking id, in the runner's ``github_<guid>`` form."""
    return f"github_{uuid.uuid4()}"


def environment_of(pid: int) -> dict[str, str]:
    """A process's environment (empty when it is gone or unreadable)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def processes() -> Iterator[int]:
    """Every process id on the machine, but this one."""
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name)


def tracked(tracking_id: str, job: str | None = None) -> list[int]:
    """Processes carrying ``tracking_id`` (and, when given, started by ``job``)."""
    found = []
    for pid in processes():
        env = environment_of(pid)
        if env.get("RUNNER_TRACKING_ID") != tracking_id:
            continue
        if job is None or env.get("GITHUB_JOB") == job:
            found.append(pid)
    return found


def cleanup_job(tracking_id: str, job: str | None = None) -> list[int]:
    """Terminate (SIGKILL, as the runner does) every process of the job; their pids."""
    if not tracking_id:
        return []
    killed = []
    for pid in tracked(tracking_id, job):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(pid)
    return killed
