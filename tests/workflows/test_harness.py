"""The harness's model of GitHub, checked with act on a tiny workflow (seconds, no project)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.dev.harness.machines import machine_env, machine_roots
from scripts.dev.harness.runner import new_tracking_id, run_streaming
from scripts.dev.harness.runs import STANDINS

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


def act_push(tmp_path: Path, tracking: str, *extra: str) -> list[str]:
    """The act command for a push: host mode for both label kinds, the run's tracking id."""
    return [
        str(Path(sys.executable).parent / "act"),
        "push",
        "--json",
        "--action-cache-path",
        str(tmp_path / "act-cache"),
        *("-P", "ubuntu-latest=-self-hosted", "-P", "self-hosted=-self-hosted"),
        *("--env", f"RUNNER_TRACKING_ID={tracking}"),
        *extra,
    ]


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
    tracking = new_tracking_id()
    try:
        code, output, cleaned = run_streaming(
            act_push(tmp_path, tracking), tmp_path, os.environ, tracking
        )
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


MACHINES_WORKFLOW = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "$HOME" > "$OUT/build"; touch ~/left-by-build
  test:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: echo "$HOME" > "$OUT/test"; ls ~ > "$OUT/test-sees"
  train:
    needs: test
    runs-on: [self-hosted, gpu]
    steps:
      - run: echo "$HOME" > "$OUT/train"; touch ~/left-by-train
  retrain:
    needs: train
    runs-on: [self-hosted, gpu]
    steps:
      - run: echo "$HOME" > "$OUT/retrain"; ls ~ > "$OUT/retrain-sees"
  deploy:
    needs: retrain
    runs-on: [self-hosted, deploy]
    steps:
      - run: echo "$HOME" > "$OUT/deploy"; ls ~ > "$OUT/deploy-sees"
"""


def test_each_job_gets_the_machine_its_labels_would(tmp_path: Path) -> None:
    workflow = tmp_path / "repo" / ".github" / "workflows" / "w.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(MACHINES_WORKFLOW, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "repo", check=True)
    out = tmp_path / "out"
    out.mkdir()
    roots = machine_roots(workflow, {}, tmp_path / "machines", "run-1")
    env = {
        **os.environ,
        **machine_env(roots),
        "OUT": str(out),
        "PATH": f"{STANDINS / 'machine'}{os.pathsep}{os.environ['PATH']}",
    }
    tracking = new_tracking_id()
    command = act_push(tmp_path, tracking)
    code, output, _ = run_streaming(command, tmp_path / "repo", env, tracking, False)
    assert code == 0, output[-3000:]
    home = {job: (out / job).read_text().strip() for job in roots}
    # Hosted labels: a new machine per job, nothing left from the job before.
    assert home["build"] != home["test"]
    assert (out / "test-sees").read_text() == ""
    # One self-hosted label set: one machine, whose HOME outlives its jobs.
    assert home["train"] == home["retrain"]
    assert "left-by-train" in (out / "retrain-sees").read_text()
    # Another self-hosted label set is another machine.
    assert home["deploy"] not in (home["train"], home["build"])
    assert (out / "deploy-sees").read_text() == ""
    assert home == {job: str(root / "home") for job, root in roots.items()}


CACHE = "actions/cache@0057852bfaa89a56745cba8c7296529d2fc39830"
CACHES_WORKFLOW = """
on: push
jobs:
  first:
    runs-on: ubuntu-latest
    steps:
      - {id: c, uses: CACHE, with: {path: built, key: deps-v1, restore-keys: deps-}}
      - run: echo "${{ steps.c.outputs.cache-hit }}" > "$OUT/first"; echo v1 > built/file
  second:
    needs: first
    runs-on: ubuntu-latest
    steps:
      - {id: c, uses: CACHE, with: {path: built, key: deps-v1}}
      - run: echo "${{ steps.c.outputs.cache-hit }} $(cat built/file)" > "$OUT/second"
  third:
    needs: second
    runs-on: ubuntu-latest
    steps:
      - {id: c, uses: CACHE, with: {path: built, key: deps-v2, restore-keys: deps-}}
      - run: |
          echo "${{ steps.c.outputs.cache-hit }} ${{ steps.c.outputs.cache-matched-key }} \\
          $(cat built/file)" > "$OUT/third"
          echo v2 > built/file
  failed:
    needs: third
    runs-on: ubuntu-latest
    steps:
      - {id: c, uses: CACHE, with: {path: built, key: never-v1}}
      - run: echo broken > built/file; exit 1
  fourth:
    needs: failed
    if: always()
    runs-on: ubuntu-latest
    steps:
      - {id: c, uses: CACHE, with: {path: built, key: never-v1}}
      - run: echo "${{ steps.c.outputs.cache-hit }} $(ls built | wc -l)" > "$OUT/fourth"
"""


def test_a_cache_restores_on_its_key_or_restore_keys_and_saves_after_a_successful_job(
    tmp_path: Path,
) -> None:
    workflow = tmp_path / "repo" / ".github" / "workflows" / "w.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(CACHES_WORKFLOW.replace("CACHE", CACHE), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "repo", check=True)
    out = tmp_path / "out"
    out.mkdir()
    tracking = new_tracking_id()
    env = {
        **os.environ,
        "OUT": str(out),
        "GITOPS_ML_PYTHON": sys.executable,
        "GITOPS_ML_CACHE_STORE": str(tmp_path / "cache-store"),
    }
    command = act_push(
        tmp_path, tracking, "--local-repository", f"{CACHE}={STANDINS / 'actions' / 'cache'}"
    )
    code, _, _ = run_streaming(command, tmp_path / "repo", env, tracking, False, tmp_path)
    assert code != 0  # the job that fails on purpose
    read = {name: (out / name).read_text().split() for name in ("first", "second", "third")}
    assert read["first"] == ["false"]  # nothing stored yet
    assert read["second"] == ["true", "v1"]  # saved after `first` succeeded
    assert read["third"] == ["false", "deps-v1", "v1"]  # a restore-key, newest match
    assert (out / "fourth").read_text().split() == ["false", "0"]  # a failed job saves nothing
    keys = sorted(
        json.loads(p.read_text())["key"] for p in (tmp_path / "cache-store").glob("*/meta.json")
    )
    # never-v1 is the empty folder `fourth` left (it missed, then succeeded), not `failed`'s.
    assert keys == ["deps-v1", "deps-v2", "never-v1"]
    stored = {
        json.loads((entry / "meta.json").read_text())["key"]: entry
        for entry in (tmp_path / "cache-store").iterdir()
    }
    assert not any((stored["never-v1"] / "paths" / "0").iterdir())
    assert (stored["deps-v2"] / "paths" / "0" / "file").read_text() == "v2\n"


def test_the_sandboxs_github_api_serves_for_its_life_with_githubs_dispatch_rules(
    tmp_path: Path,
) -> None:
    # The relay dispatches long after the run that deployed it: the stand-in must still
    # answer once create_sandbox has returned and its locals are gone.
    import gc

    from scripts.cd.checks import request
    from scripts.dev.harness.github.tokens import DISPATCH_TOKEN, READ_ONLY_TOKEN, REPOSITORY
    from scripts.dev.harness.sandbox import create_sandbox

    sandbox = create_sandbox(tmp_path / "sandbox")
    gc.collect()
    url = f"{sandbox.api_url}/repos/{REPOSITORY}/dispatches"
    body = {"event_type": "drift-alert", "client_payload": {"features": "age"}}

    def dispatch(token: str, payload: object = body) -> int:
        return request(url, payload, headers={"Authorization": f"Bearer {token}"})[0]

    assert dispatch(READ_ONLY_TOKEN) == 403
    assert dispatch("not-a-token") == 401
    assert dispatch(DISPATCH_TOKEN, {"event_type": "x" * 101}) == 422
    assert dispatch(DISPATCH_TOKEN) == 204
    assert [(d["event_type"], d["token"]) for d in sandbox.dispatches()] == [("drift-alert", "app")]
    assert (
        request(
            url.replace(REPOSITORY, "someone/else"),
            body,
            headers={"Authorization": f"Bearer {DISPATCH_TOKEN}"},
        )[0]
        == 404
    )
