"""The runner's orphan-process cleanup, as the harness models it (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.dev.harness.runner import cleanup_job, new_tracking_id, parents, reboot, tracked


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own session, like `setsid`/`nohup` in a step: no process-group kill reaches it.
    return subprocess.Popen(["sleep", "120"], env=env, start_new_session=True)


@pytest.fixture
def three() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    tracking = new_tracking_id()
    base = {key: value for key, value in os.environ.items() if key != "RUNNER_TRACKING_ID"}
    job = {**base, "RUNNER_TRACKING_ID": tracking}
    processes = [
        start({**job, "GITHUB_JOB": "staging"}),
        start({**job, "GITHUB_JOB": "production"}),
        start({**base, "GITHUB_JOB": "staging"}),  # started without the id: a supervisor's
    ]
    yield tracking, processes
    for process in processes:
        process.kill()
        process.wait()


def test_a_process_started_in_a_job_is_gone_after_it(
    three: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    tracking, (staging, production, outside) = three
    assert sorted(tracked(tracking)) == sorted([staging.pid, production.pid])
    assert cleanup_job(tracking, "staging") == [staging.pid]
    assert staging.wait(timeout=5) == -9
    assert production.poll() is None  # another job's process lives on until its job ends
    assert cleanup_job(tracking, "production") == [production.pid]
    assert production.wait(timeout=5) == -9
    assert outside.poll() is None  # no tracking id: the runner cannot see it


def test_no_tracking_id_cleans_nothing(three: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    _, processes = three
    assert cleanup_job("") == []
    assert all(process.poll() is None for process in processes)


def test_a_reboot_ends_every_process_of_the_machine_and_only_those(tmp_path: Path) -> None:
    machine = tmp_path / "machines" / "deploy"
    (machine / "tmp").mkdir(parents=True)
    (machine / "tmp" / "socket").write_text("", encoding="utf-8")
    run_dir = tmp_path / "run"
    base = {key: value for key, value in os.environ.items() if key != "GITOPS_ML_MACHINE"}
    step = start({**base, "GITOPS_ML_MACHINE": str(machine)})
    service = start({**base, "HOME": str(machine / "home")})  # a supervisor's clean env
    # A process that empties its environment (nginx) but names the run directory, with a
    # child that names nothing.
    named = subprocess.Popen(
        ["/bin/sh", "-c", "/bin/sleep 120 & wait", str(run_dir)], env={}, start_new_session=True
    )
    other = start(base)
    try:
        time.sleep(0.3)
        (child,) = [pid for pid, parent in parents().items() if parent == named.pid]
        killed = set(reboot(machine, [run_dir]))
        assert killed == {step.pid, service.pid, named.pid, child}
        for process in (step, service, named):
            assert process.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None
        assert not (machine / "tmp").exists()
    finally:
        for process in (step, service, named, other):
            process.kill()
            process.wait()
