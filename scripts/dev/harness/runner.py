"""What a GitHub Actions runner does at a job boundary, for the act harness.

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

The runner's other job-boundary duty modelled here is the cache save of actions/cache's post
step (:func:`save_caches`); :func:`run_streaming` runs act and does both at each job's end.
A machine's reboot (:func:`reboot`) ends every process it ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

PROC = Path("/proc")
ACT_TIMEOUT_S = 1800


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


def parents() -> dict[int, int]:
    """Every live process's parent: ``{pid: ppid}``."""
    found = {}
    for pid in processes():
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        found[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def command_of(pid: int) -> str:
    """A process's command line (empty when it is gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def reboot(machine: Path, marks: Sequence[Path] = ()) -> list[int]:
    """A machine restarts: every process it ran is gone and its temporary folder is empty.

    The machine's processes are those whose environment names it (``GITOPS_ML_MACHINE``,
    set for every step by the machine wrapper, or a ``HOME`` inside it, which a service
    started with a clean environment still inherits), those whose command line names one of
    ``marks`` (folders only that machine's services use: nginx empties its environment),
    and every descendant of those. Returns their pids.
    """

    def owned(pid: int) -> bool:
        env = environment_of(pid)
        if env.get("GITOPS_ML_MACHINE") == str(machine):
            return True
        if env.get("HOME", "").startswith(f"{machine}/"):
            return True
        command = command_of(pid)
        return any(str(mark) in command for mark in marks)

    tree = parents()
    doomed = {pid for pid in tree if owned(pid)}
    grown = True
    while grown:
        children = {pid for pid, parent in tree.items() if parent in doomed} - doomed
        doomed |= children
        grown = bool(children)
    killed = []
    for pid in sorted(doomed):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(pid)
    shutil.rmtree(machine / "tmp", ignore_errors=True)
    return killed


def save_caches(root: Path, tracking_id: str, job: str, succeeded: bool) -> list[str]:
    """At the end of a job, what actions/cache's post step does: save under the primary key.

    The cache stand-in left one request per missed key (``<root>/cache-requests``) with the
    staging folder the job wrote through; a successful job's staging becomes the entry for
    that key unless one exists (entries are immutable); otherwise it is dropped.

    Returns:
        The keys saved.
    """
    saved: list[str] = []
    requests = root / "cache-requests"
    store = root / "cache-store"
    taken = {
        json.loads(meta.read_text(encoding="utf-8"))["key"] for meta in store.glob("*/meta.json")
    }
    for path in sorted(requests.glob("*.json")) if requests.is_dir() else []:
        request = json.loads(path.read_text(encoding="utf-8"))
        if request["tracking"] != tracking_id or request["job"] != job:
            continue
        path.unlink()
        staging = Path(request["staging"])
        if not succeeded or request["key"] in taken or not staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            continue
        entry = store / staging.name
        entry.mkdir(parents=True)
        staging.rename(entry / "paths")
        (entry / "meta.json").write_text(json.dumps({"key": request["key"]}), encoding="utf-8")
        taken.add(request["key"])
        saved.append(request["key"])
    return saved


def run_streaming(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    tracking_id: str,
    cleanup: bool = True,
    caches: Path | None = None,
) -> tuple[int, str, dict[str, list[int]]]:
    """Run act, reading its JSON log as it comes; at each job's end, what the runner does.

    Args:
        command: The act command line (with ``--json``).
        cwd: Where act runs.
        env: Its environment.
        tracking_id: The run's ``RUNNER_TRACKING_ID``.
        cleanup: Terminate each job's processes when it ends (the runner always does).
        caches: The sandbox root whose cache store the jobs' cache saves go to, if any.

    Returns:
        Act's exit status, its whole output, and the pids terminated per job.
    """
    cleaned: dict[str, list[int]] = {}
    output: list[str] = []
    with subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        watchdog = threading.Timer(ACT_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                if not line.startswith("{") or '"jobResult"' not in line:
                    continue
                event = json.loads(line)
                job = str(event.get("jobID", ""))
                if caches is not None:
                    save_caches(caches, tracking_id, job, event["jobResult"] == "success")
                if cleanup:
                    cleaned.setdefault(job, []).extend(cleanup_job(tracking_id, job))
            returncode = process.wait()
        finally:
            watchdog.cancel()
    if cleanup:  # a job act never reported (cancelled, crashed)
        leftovers = cleanup_job(tracking_id)
        if leftovers:
            cleaned.setdefault("(after the run)", []).extend(leftovers)
    return returncode, "".join(output), cleaned
