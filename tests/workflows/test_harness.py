"""The harness's model of GitHub, checked with act on a tiny workflow (seconds, no project)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.dev.act import run_streaming
from scripts.dev.runner import new_tracking_id

pytestmark = [pytest.mark.integration, pytest.mark.workflow]

WORKFLOW = """
on: push
jobs:
  serve:
    runs-on: self-hosted
    steps:
      - run: |
          setsid sleep {marker}1 > /dev/null 2>&1 < /dev/null &
          env -u RUNNER_TRACKING_ID setsid sleep {marker}2 > /dev/null 2>&1 < /dev/null &
          echo "vars=[${{{{ vars.UNSET }}}}] secret=[${{{{ secrets.UNSET }}}}]"
          sleep 1  # act kills the step's process group at once: let setsid detach first
  after:
    needs: serve
    runs-on: self-hosted
    steps:
      - run: pgrep -f "^sleep {marker}" | wc -l
"""


def pids(marker: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"^sleep {marker}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_job_end_kills_the_jobs_processes_but_not_one_started_without_the_id(
    tmp_path: Path,
) -> None:
    marker = f"{os.getpid() % 1000}{int(time.time()) % 1000}.0"
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "w.yml").write_text(
        WORKFLOW.format(marker=marker), encoding="utf-8"
    )
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    command = [
        str(Path(sys.executable).parent / "act"),
        "push",
        "--json",
        "-P",
        "self-hosted=-self-hosted",
        "--action-cache-path",
        str(tmp_path / "act-cache"),
        "--env",
        f"RUNNER_TRACKING_ID={(tracking := new_tracking_id())}",
    ]
    try:
        code, output, cleaned = run_streaming(command, tmp_path, os.environ, tracking)
        assert code == 0, output[-3000:]
        survivors = pids(marker)
        assert len(survivors) == 1  # the one started without RUNNER_TRACKING_ID
        assert len(cleaned["serve"]) == 1
        assert cleaned["serve"][0] not in survivors
        # The next job ran after the cleanup: it saw only the process without the id.
        assert '"msg":"1\\n","raw_output":true' in output
        assert "vars=[] secret=[]" in output  # unset variables and secrets are empty
    finally:
        for pid in pids(marker):
            os.kill(pid, 9)
