"""The runner's orphan-process cleanup, as the harness models it (real processes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from scripts.dev.harness.runner import cleanup_job, new_tracking_id, tracked


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
