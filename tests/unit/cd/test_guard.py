"""Only main's own runs change an environment (scripts/cd/guard.py, issue #21)."""

from __future__ import annotations

import pytest

from scripts import deploy
from scripts.cd.guard import refusal

MAIN = {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main"}


@pytest.mark.parametrize("event", ["push", "schedule", "workflow_dispatch"])
def test_main_s_own_runs_deploy(event: str) -> None:
    assert refusal("apply", "production", {**MAIN, "GITHUB_EVENT_NAME": event}) is None


@pytest.mark.parametrize(
    ("event", "ref"),
    [
        ("pull_request", "refs/pull/40/merge"),
        ("pull_request_target", "refs/heads/main"),
        ("workflow_run", "refs/heads/main"),
        ("push", "refs/heads/feature"),
        ("workflow_dispatch", "refs/heads/feature"),
        ("issue_comment", "refs/heads/main"),
    ],
)
def test_any_other_run_is_refused_naming_event_and_ref(event: str, ref: str) -> None:
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_REF": ref}
    message = refusal("reconcile", "production", environ)
    assert message is not None
    assert f"from a {event} run on {ref}" in message
    assert "reconcile production" in message


def test_reading_commands_and_laptops_are_never_refused() -> None:
    pull = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "x"}
    assert refusal("status", "production", pull) is None
    assert refusal("apply", "production", {"GITHUB_EVENT_NAME": "pull_request"}) is None


def test_the_deploy_command_exits_1_before_touching_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    # A state directory that does not exist: a refusal must come before any read of it.
    code = deploy.main(["apply", "--env", "production", "--state-dir", f"{tmp_path}/none"])
    assert code == 1
    assert "refusing to apply production from a pull_request run" in capsys.readouterr().err
