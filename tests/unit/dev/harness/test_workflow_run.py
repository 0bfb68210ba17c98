"""GitHub's workflow_run event and run artifacts as the harness models them (no act).

Which workflows a completed run starts, the ref and environment they run under, and the
``gh run download`` stand-in with GitHub's token rule (``actions: read``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.dev.harness.github.environments import Environment, branch_refusal
from scripts.dev.harness.github.state import Record
from scripts.dev.harness.github.tokens import REPOSITORY, WORKFLOW_TOKEN, scopes_of
from scripts.dev.harness.runs import STANDINS, ActRun
from scripts.dev.harness.sandbox import Sandbox
from scripts.dev.harness.workflows import (
    event_ref,
    job_environments,
    job_scopes,
    load,
    triggered_workflows,
)
from scripts.dev.workspace import PROJECT_ROOT

LOCK_YML = PROJECT_ROOT / ".github" / "workflows" / "lock.yml"


def test_a_completed_train_run_starts_lock_yml_and_nothing_else() -> None:
    started = triggered_workflows(PROJECT_ROOT, "workflow_run", ["train"], "improve")
    assert started == ["lock.yml"]
    # Listeners match the workflow's name, not its file; other runs start nothing.
    assert triggered_workflows(PROJECT_ROOT, "workflow_run", ["train.yml"], "improve") == []
    assert triggered_workflows(PROJECT_ROOT, "workflow_run", ["release"], "main") == []


def test_lock_yml_deploys_from_the_default_branch_with_the_least_token() -> None:
    ref = event_ref("workflow_run", {}, "improve")
    assert ref == "refs/heads/main"  # GITHUB_REF of a workflow_run, whatever the PR's branch
    (job,) = load(LOCK_YML)["jobs"].values()
    assert job_environments(job) == {"release"}
    release = Environment(branches=("main",))
    assert branch_refusal("release", release, ref) is None
    # A pull request's own run could not reach the App's key in that environment.
    assert branch_refusal("release", release, event_ref("pull_request", {"number": 4}, "x"))
    assert scopes_of(job_scopes(LOCK_YML)["lock"]) == {"actions": "read", "contents": "read"}
    assert load(LOCK_YML)["permissions"] == {}


def test_the_workflow_run_payload_carries_the_completed_run(tmp_path: Path) -> None:
    run = ActRun("train.yml", "pull_request", 1, {"train": "failure"}, ["train"], tmp_path, 1.0)
    run.details = {
        "id": 7,
        "name": "train",
        "event": "pull_request",
        "head_branch": "improve",
        "head_sha": "a" * 40,
        "head_repository": {"full_name": REPOSITORY},
    }
    payload = Sandbox(tmp_path).event_payload("workflow_run", workflow_run=run.workflow_run())
    assert payload["action"] == "completed"
    assert payload["workflow_run"] == {**run.details, "conclusion": "failure"}
    assert payload["repository"]["full_name"] == REPOSITORY


@pytest.fixture
def gh(tmp_path: Path) -> dict[str, str]:
    """A job of run 2 (``lock``) whose token the stand-in judges; run 1 uploaded ``lock``."""
    store = tmp_path / "artifacts"
    (store / "1" / "lock" / "reports").mkdir(parents=True)
    (store / "1" / "lock" / "dvc.lock").write_text("lock\n", encoding="utf-8")
    (store / "1" / "lock" / "reports" / "validation.json").write_text("{}\n", encoding="utf-8")
    (store / "3" / "figures").mkdir(parents=True)
    Record(tmp_path / "record").set_job_scopes(
        {"lock": {"actions": "read"}, "other": {"contents": "read"}}
    )
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(STANDINS / "bin"), os.environ["PATH"]]),
        "GITOPS_ML_PYTHON": sys.executable,
        "GITOPS_ML_RECORD": str(tmp_path / "record"),
        "GITOPS_ML_ARTIFACTS": str(store / "2"),
        "GITHUB_JOB": "lock",
        "GH_TOKEN": WORKFLOW_TOKEN,
    }


def download(env: dict[str, str], run_id: str, into: Path) -> subprocess.CompletedProcess[str]:
    command = ["gh", "run", "download", run_id, "-n", "lock", "-D", str(into)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_gh_run_download_fetches_another_runs_artifact_with_actions_read(
    gh: dict[str, str], tmp_path: Path
) -> None:
    done = download(gh, "1", tmp_path / "lock")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lock" / "dvc.lock").read_text(encoding="utf-8") == "lock\n"
    assert (tmp_path / "lock" / "reports" / "validation.json").is_file()


def test_gh_run_download_refuses_a_token_without_actions_read(
    gh: dict[str, str], tmp_path: Path
) -> None:
    refused = download({**gh, "GITHUB_JOB": "other"}, "1", tmp_path / "lock")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "error fetching artifacts: HTTP 403: Resource not accessible by integration "
        f"(https://api.github.com/repos/{REPOSITORY}/actions/runs/1/artifacts?per_page=100)"
    )
    assert not (tmp_path / "lock").exists()
    no_token = download({k: v for k, v in gh.items() if k != "GH_TOKEN"}, "1", tmp_path / "x")
    assert no_token.returncode == 4
    assert "set the GH_TOKEN environment variable" in no_token.stderr


def test_gh_run_download_says_what_gh_says_when_there_is_nothing(
    gh: dict[str, str], tmp_path: Path
) -> None:
    none_at_all = download(gh, "9", tmp_path / "lock")
    assert (none_at_all.returncode, none_at_all.stderr) == (
        1,
        "no valid artifacts found to download\n",
    )
    other_names = download(gh, "3", tmp_path / "lock")
    assert (other_names.returncode, other_names.stderr) == (
        1,
        "no artifact matches any of the names or patterns provided\n",
    )


def test_a_dispatch_on_a_branch_is_judged_as_that_branch() -> None:
    # workflow_dispatch runs the named branch's file, GITHUB_REF that branch: a main-only
    # environment refuses it its secrets.
    ref = event_ref("workflow_dispatch", {}, "feature")
    assert ref == "refs/heads/feature"
    refusal = branch_refusal("release", Environment(branches=("main",)), ref)
    assert refusal == (
        'Branch "feature" is not allowed to deploy to release due to environment protection '
        "rules."
    )
    assert event_ref("schedule", {}, "feature") == "refs/heads/main"
