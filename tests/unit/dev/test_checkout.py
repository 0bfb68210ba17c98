"""The fresh checkout per job: pull-request refs in origin and the checkout stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.github.tokens import WORKFLOW_TOKEN
from scripts.dev.harness.sandbox import Sandbox, install_hooks


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """A main branch with one file and a PR branch changing another, pushed to a bare origin."""
    box = Sandbox(tmp_path)
    box.work.mkdir()
    git(box.work, "init", "-q", "-b", "main")
    (box.work / "a.txt").write_text("a\n", encoding="utf-8")
    git(box.work, "add", "-A")
    git(box.work, "commit", "-q", "-m", "main")
    git(tmp_path, "clone", "-q", "--bare", str(box.work), str(tmp_path / "origin.git"))
    git(box.work, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(box.work, "checkout", "-q", "-b", "feature")
    (box.work / "b.txt").write_text("b\n", encoding="utf-8")
    git(box.work, "add", "-A")
    git(box.work, "commit", "-q", "-m", "feature")
    return box


def test_a_pull_request_gets_head_and_merge_refs(sandbox: Sandbox) -> None:
    merge = sandbox.publish_pull_request(7, "main")
    parents = sandbox.origin_git("rev-list", "--parents", "-n", "1", merge).stdout.split()[1:]
    main = sandbox.origin_git("rev-parse", "refs/heads/main").stdout.strip()
    assert parents == [main, sandbox.head()]
    assert sandbox.origin_git("rev-parse", "refs/pull/7/merge").stdout.strip() == merge


def test_a_conflicting_pull_request_gets_no_run(sandbox: Sandbox) -> None:
    (sandbox.work / "a.txt").write_text("feature\n", encoding="utf-8")
    git(sandbox.work, "commit", "-q", "-am", "feature edits a")
    git(sandbox.work, "checkout", "-q", "main")
    (sandbox.work / "a.txt").write_text("main\n", encoding="utf-8")
    git(sandbox.work, "commit", "-q", "-am", "main edits a")
    git(sandbox.work, "push", "-q", "origin", "main")
    git(sandbox.work, "checkout", "-q", "feature")
    with pytest.raises(ActError, match="PR #8 conflicts with main: GitHub starts no"):
        sandbox.publish_pull_request(8, "main")


def checkout(sandbox: Sandbox, workspace: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-m", "scripts.dev.harness.actions.checkout"],
        cwd=workspace,
        env={
            **os.environ,
            "GITOPS_ML_ORIGIN": str(sandbox.root / "origin.git"),
            "GITHUB_WORKSPACE": str(workspace),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_checkout_is_fresh_shallow_and_of_the_merge_ref(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    merge = sandbox.publish_pull_request(7, "main")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7}), encoding="utf-8")
    workspace = tmp_path / "workspace"
    (workspace / ".dvc" / "cache").mkdir(parents=True)  # what an earlier job left behind
    result = checkout(
        sandbox,
        workspace,
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(workspace, "rev-parse", "HEAD") == merge
    assert git(workspace, "rev-parse", "--is-shallow-repository") == "true"
    assert sorted(p.name for p in workspace.iterdir()) == [".git", "a.txt", "b.txt"]


def test_fetch_depth_0_brings_every_branch_and_a_ref_input_wins(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.publish_pull_request(7, "main")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = checkout(sandbox, workspace, GITHUB_EVENT_NAME="push", REF="main", DEPTH="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(workspace, "rev-parse", "--is-shallow-repository") == "false"
    assert "origin/main" in git(workspace, "branch", "-r")
    assert not (workspace / "b.txt").exists()  # main, not the PR


def test_pushes_record_who_made_them_and_only_non_workflow_events_start_workflows(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_hooks(sandbox.root / "origin.git")
    workflows = sandbox.work / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "deploy.yml").write_text(
        "on:\n  push:\n    branches: [main]\n    paths: ['state/**']\njobs: {}\n", encoding="utf-8"
    )
    git(sandbox.work, "checkout", "-q", "main")
    git(sandbox.work, "add", "-A")
    git(sandbox.work, "commit", "-q", "-m", "a workflow")
    sandbox.push("main")  # a person, no token
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        Sandbox,
        "act",
        lambda self, event, workflow, **payload: started.append(
            (event, workflow, payload["before"])
        ),
    )

    def push_state(name: str, token: str) -> tuple[str, str]:
        before = sandbox.head("main")
        (sandbox.work / "state").mkdir(exist_ok=True)
        (sandbox.work / "state" / name).write_text(name, encoding="utf-8")
        git(sandbox.work, "add", "-A")
        git(sandbox.work, "commit", "-q", "-m", name)
        env = {**os.environ, "GH_TOKEN": token}
        subprocess.run(
            ["git", "push", "-q", "origin", "main"], cwd=sandbox.work, env=env, check=True
        )
        return before, sandbox.head("main")

    seen = len(sandbox.pushes())
    push_state("by-workflow", WORKFLOW_TOKEN)
    before, _ = push_state("by-app", "an-app-token")
    assert [p["by"] for p in sandbox.pushes()] == ["person", "workflow", "app"]
    sandbox.follow_up(seen, 0)
    assert started == [("push", "deploy.yml", before)]  # the App's push only
