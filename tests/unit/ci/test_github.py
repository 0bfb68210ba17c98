"""scripts.comment against the recording cml/gh stand-ins the act harness uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.ci.github import DEFAULT_WATERMARK
from scripts.dev.harness.github.state import Record
from scripts.dev.harness.github.tokens import APP_TOKEN, READ_ONLY_TOKEN, WORKFLOW_TOKEN
from scripts.dev.harness.runs import STANDINS


@pytest.fixture
def github(tmp_path: Path) -> dict[str, str]:
    """Environment of a pull_request run with the stand-ins first on PATH."""
    record = tmp_path / "record"
    record.mkdir()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7}}), encoding="utf-8")
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(STANDINS / "cml"), str(STANDINS / "bin"), os.environ["PATH"]]),
        "GITOPS_ML_PYTHON": sys.executable,
        # The App's installation token, as the workflows pass it (GitHub refuses a write
        # without a token).
        "GH_TOKEN": APP_TOKEN,
        "GITOPS_ML_RECORD": str(record),
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "team/models",
    }


def comment(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.comment", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def state(env: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    document: dict[str, list[dict[str, object]]] = Record(Path(env["GITOPS_ML_RECORD"])).github()
    return document


@pytest.mark.parametrize("backend", ["cml", "gh"])
def test_sticky_comment_is_created_once_then_updated(
    github: dict[str, str], tmp_path: Path, backend: str
) -> None:
    report = tmp_path / "report.md"
    for version in ("first", "second"):
        report.write_text(f"## report {version}\n", encoding="utf-8")
        result = comment(github, "--backend", backend, "pr", str(report))
        assert result.returncode == 0, result.stderr
    (posted,) = state(github)["comments"]
    assert posted["pr"] == 7
    assert posted["edits"] == 1
    assert "## report second" in str(posted["body"])
    # Both write CML's watermark at the end (iterative/cml src/watermark.js).
    assert str(posted["body"]).endswith(
        f'![](https://cml.dev/watermark.png#{"0" * 40} "CML watermark {DEFAULT_WATERMARK}")'
    )
    if backend == "cml":
        assert posted["publish"] == "false"


@pytest.mark.parametrize(("first", "then"), [("cml", "gh"), ("gh", "cml")])
def test_switching_backends_updates_the_same_comment(
    github: dict[str, str], tmp_path: Path, first: str, then: str
) -> None:
    report = tmp_path / "report.md"
    for backend, sha in ((first, "a" * 40), (then, "b" * 40)):
        report.write_text(f"## report by {backend}\n", encoding="utf-8")
        result = comment({**github, "GITHUB_SHA": sha}, "--backend", backend, "pr", str(report))
        assert result.returncode == 0, result.stderr
    (posted,) = state(github)["comments"]
    assert (posted["tool"], posted["edits"]) == (then, 1)
    assert f"## report by {then}" in str(posted["body"])
    assert f"watermark.png#{'b' * 40}" in str(posted["body"])


def test_a_failing_cml_falls_back_to_gh(github: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "cml").write_text("#!/bin/sh\necho 'cml: broken' >&2\nexit 1\n", encoding="utf-8")
    (broken / "cml").chmod(0o755)
    env = {**github, "PATH": f"{broken}{os.pathsep}{github['PATH']}"}
    report = tmp_path / "report.md"
    report.write_text("## report\n", encoding="utf-8")
    result = comment(env, "pr", str(report))
    assert result.returncode == 0, result.stderr
    assert "cml failed" in result.stderr
    assert "posting with gh" in result.stderr
    (posted,) = state(github)["comments"]
    assert posted["tool"] == "gh"


def test_a_comment_without_a_pr_number_fails_with_the_reason(
    github: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "report.md"
    report.write_text("x\n", encoding="utf-8")
    env = {**github, "GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}
    result = comment(env, "--backend", "gh", "pr", str(report))
    assert result.returncode == 1
    assert "no pull request number" in result.stderr


def test_missing_tools_are_named(github: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("x\n", encoding="utf-8")
    result = comment({**github, "PATH": str(tmp_path)}, "pr", str(report))
    assert result.returncode == 1
    assert "cml nor gh not found on PATH" in result.stderr


def test_open_pr_is_idempotent(github: dict[str, str], tmp_path: Path) -> None:
    body = tmp_path / "body.md"
    body.write_text("drift summary\n", encoding="utf-8")
    args = ("open-pr", "--head", "retrain/w1", "--title", "Retrain", "--body-file", str(body))
    first, second = comment(github, *args), comment(github, *args)
    assert first.returncode == second.returncode == 0
    assert "opened https://github.invalid/team/models/pull/100" in first.stdout
    assert "already open for retrain/w1" in second.stdout
    (pull,) = state(github)["pulls"]
    assert pull["body"] == "drift summary\n"


def open_pr(env: dict[str, str], tmp_path: Path, token: str) -> subprocess.CompletedProcess[str]:
    body = tmp_path / "body.md"
    body.write_text("state change\n", encoding="utf-8")
    return comment(
        {**env, "GH_TOKEN": token},
        "open-pr",
        "--head",
        "gitops/x",
        "--title",
        "x",
        "--body-file",
        str(body),
    )


def test_a_pr_made_with_the_workflow_token_is_refused_by_default(
    github: dict[str, str], tmp_path: Path
) -> None:
    result = open_pr(github, tmp_path, WORKFLOW_TOKEN)
    assert result.returncode == 1
    assert "GitHub Actions is not permitted to create or approve pull requests" in result.stderr
    assert state(github)["pulls"] == []


def test_the_workflow_token_opens_prs_when_allowed_but_they_trigger_nothing(
    github: dict[str, str], tmp_path: Path
) -> None:
    Record(Path(github["GITOPS_ML_RECORD"])).set_settings(
        {"actions_can_create_pull_requests": True}
    )
    assert open_pr(github, tmp_path, WORKFLOW_TOKEN).returncode == 0
    (pull,) = state(github)["pulls"]
    assert (pull["token"], pull["triggers_workflows"]) == ("workflow", False)


def test_an_app_token_opens_prs_that_trigger_workflows(
    github: dict[str, str], tmp_path: Path
) -> None:
    assert open_pr(github, tmp_path, "an-app-installation-token").returncode == 0
    (pull,) = state(github)["pulls"]
    assert (pull["token"], pull["triggers_workflows"]) == ("app", True)


def test_a_forks_read_only_token_cannot_comment(github: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text("## report\n", encoding="utf-8")
    read_only = {**github, "GH_TOKEN": READ_ONLY_TOKEN}
    result = comment(read_only, "--backend", "gh", "pr", str(report))
    assert result.returncode == 1
    assert "Resource not accessible by integration (HTTP 403)" in result.stderr


def test_a_release_waits_while_a_state_change_is_pending(
    github: dict[str, str], tmp_path: Path
) -> None:
    def pending() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.gitops", "pending", "--prefix", "gitops/"],
            env=github,
            capture_output=True,
            text=True,
            check=False,
        )

    none = pending()
    assert (none.returncode, none.stdout.strip()) == (
        0,
        "gitops: no pending state change (gitops/*)",
    )
    assert open_pr(github, tmp_path, "an-app-installation-token").returncode == 0
    waiting = pending()
    assert waiting.returncode == 1
    assert (
        "a state change is pending (https://github.invalid/team/models/pull/100)" in waiting.stdout
    )


def test_release_states_are_those_of_this_repositorys_open_release_prs(
    github: dict[str, str], tmp_path: Path
) -> None:
    """What `make reconcile` keeps running: the state on each open release PR's branch.

    A decision PR is no release; a fork's PR may call its branch ``gitops/release-…`` and
    is ignored; the file is read from origin's branch, not from the PR's description.
    """
    origin, work = tmp_path / "origin.git", tmp_path / "work"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=work, capture_output=True, text=True, check=True
        ).stdout

    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True)
    state_file = work / "bentos" / "deployments" / "production.yaml"
    state_file.parent.mkdir(parents=True)
    state_file.write_text("environment: production\nvariants: []\n", encoding="utf-8")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "main")
    git("push", "-q", "origin", "HEAD:refs/heads/main")
    state_file.write_text("environment: production\n# the release's\n", encoding="utf-8")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "release")
    git("push", "-q", "origin", "HEAD:refs/heads/gitops/release-abc")
    git("checkout", "-q", "HEAD^")
    with Record(Path(github["GITOPS_ML_RECORD"])).update() as document:
        document["pulls"] += [
            {"number": 100, "head": "gitops/release-abc", "state": "open", "url": "u100"},
            {"number": 101, "head": "gitops/production-decision", "state": "open", "url": "u"},
            {"number": 102, "head": "gitops/release-evil", "state": "open", "fork": True},
            {"number": 103, "head": "gitops/release-old", "state": "closed", "url": "u103"},
        ]
    out = tmp_path / "pending"
    command = ["release-states", "--env", "production", "--out", str(out)]
    listed = subprocess.run(
        [sys.executable, "-m", "scripts.gitops", *command],
        cwd=work,
        env={**github, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "100/production.yaml",
        "complete",
    ]
    assert (out / "100" / "production.yaml").read_text() == (
        "environment: production\n# the release's\n"
    )
