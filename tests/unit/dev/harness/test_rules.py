"""GitHub's rules as the harness models them, each checked on its own (no act, no git)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.dev.harness.concurrency import MAX_QUEUE, Group
from scripts.dev.harness.errors import ActError
from scripts.dev.harness.github.environments import (
    Environment,
    branch_refusal,
    job_secrets,
    run_secrets,
)
from scripts.dev.harness.github.hooks import permission_refusal, refusal
from scripts.dev.harness.github.state import Protection, Record
from scripts.dev.harness.github.tokens import (
    APP_TOKEN,
    READ_ONLY_TOKEN,
    WORKFLOW_TOKEN,
    allowed,
    scopes_of,
    token_kind,
)
from scripts.dev.harness.runs import for_act
from scripts.dev.harness.workflows import (
    Concurrency,
    job_concurrency,
    job_scopes,
    workflow_concurrency,
)
from scripts.dev.workspace import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
SINGLE = Concurrency("environment-production")
MAX = Concurrency("environment-production", queue="max")


def test_queue_single_keeps_one_pending_and_cancels_the_one_it_replaces() -> None:
    group = Group("environment-production")
    group.arrive("release / production", SINGLE)
    group.arrive("deploy / apply (production)", SINGLE)
    group.arrive("promote / decide", SINGLE)
    assert group.states() == {
        "release / production": "running",
        "deploy / apply (production)": "cancelled",
        "promote / decide": "pending",
    }
    group.finish("release / production")
    assert group.states()["promote / decide"] == "running"


def test_a_job_waiting_for_its_reviewer_is_pending_and_can_be_replaced() -> None:
    group = Group("environment-production")
    waiting = group.arrive("deploy / apply (production)", SINGLE, reviewer=True)
    assert (waiting.state, group.running) == ("pending", None)
    group.approve("deploy / apply (production)")
    assert waiting.state == "running"
    other = Group("environment-staging")
    other.arrive("deploy / apply (staging)", SINGLE, reviewer=True)
    other.arrive("promote / decide", SINGLE)
    assert other.states() == {
        "deploy / apply (staging)": "cancelled",
        "promote / decide": "running",
    }


def test_queue_max_keeps_every_pending_entry_in_order_and_cancels_a_newcomer_when_full() -> None:
    group = Group("environment-production")
    for name in ("a", "b", "c"):
        group.arrive(name, MAX)
    assert [entry.name for entry in group.pending] == ["b", "c"]
    group.finish("a")
    group.finish("b")
    assert group.states() == {"a": "completed", "b": "completed", "c": "running"}
    for index in range(MAX_QUEUE):
        group.arrive(f"queued-{index}", MAX)
    late = group.arrive("one too many", MAX)
    assert (late.state, len(group.pending)) == ("cancelled", MAX_QUEUE)
    assert group.pending[0].name == "queued-0"


def test_cancel_in_progress_cancels_the_running_entry_and_refuses_queue_max() -> None:
    group = Group("ci-7")
    group.arrive("first push", Concurrency("ci-7", cancel_in_progress=True))
    group.arrive("second push", Concurrency("ci-7", cancel_in_progress=True))
    assert group.states() == {"first push": "cancelled", "second push": "running"}
    with pytest.raises(ActError, match="queue: max requires cancel-in-progress: false"):
        group.arrive("x", Concurrency("ci-7", cancel_in_progress=True, queue="max"))


def test_groups_are_read_from_the_workflow_files() -> None:
    apply = job_concurrency(WORKFLOWS / "deploy.yml", "apply", "push", "production")
    assert apply is not None
    assert (apply.group, apply.cancel_in_progress, apply.queue) == (
        "environment-production",
        False,
        "max",
    )
    # The hourly decision applies nothing: it takes no environment's lock, only its own.
    decide = job_concurrency(WORKFLOWS / "promote.yml", "decide", "schedule")
    assert decide is not None
    assert decide.group == "promote-production"
    assert job_concurrency(WORKFLOWS / "ci.yml", "test", "pull_request") is None  # run-level
    ci = workflow_concurrency(WORKFLOWS / "ci.yml", "pull_request")
    assert ci is not None
    assert ci.cancel_in_progress
    pushed = workflow_concurrency(WORKFLOWS / "ci.yml", "push")
    assert pushed is not None
    assert not pushed.cancel_in_progress


def test_a_ruleset_refuses_gh013_unless_checks_passed_or_the_pusher_bypasses() -> None:
    rule = Protection(("tests", "dvc repro, gates, report"), bypass=("app",))
    message = refusal(rule, "main", "person", {"tests": "success"})
    assert message == (
        "GH013: Repository rule violations found for refs/heads/main.\n"
        '- Required status check "dvc repro, gates, report" is expected.'
    )
    several = refusal(rule, "main", "person", {})
    assert several is not None
    assert several.endswith("- 2 of 2 required status checks are expected.")
    passed = {"tests": "success", "dvc repro, gates, report": "skipped"}
    assert refusal(rule, "main", "person", passed) is None
    assert refusal(rule, "main", "app", {}) is None
    assert refusal(Protection(("tests",)), "main", "app", {}) is not None


def test_classic_branch_protection_refuses_gh006_and_lets_no_actor_skip_checks() -> None:
    classic = Protection(("tests",), bypass=("app",), ruleset=False)
    message = refusal(classic, "main", "app", {})
    assert message is not None
    assert message.startswith("GH006: Protected branch update failed for refs/heads/main.")


def test_protection_is_recorded_and_read_back(tmp_path: Path) -> None:
    record = Record(tmp_path)
    assert record.protection("main") is None
    rule = Protection(("tests",), ("app",), strict=True, ruleset=False)
    record.set_protection({"main": rule})
    assert record.protection("main") == rule
    assert record.settings() == {
        "actions_can_create_pull_requests": False,
        "allow_auto_merge": False,
    }


def test_a_deployment_branch_policy_lets_only_its_branches_deploy() -> None:
    production = Environment(reviewers=("lead",), branches=("main",), secrets={"KEY": "k"})
    assert branch_refusal("production", production, "refs/heads/main") is None
    refused = branch_refusal("production", production, "refs/pull/3/merge")
    assert refused is not None
    assert "not allowed to deploy to production due to environment protection rules" in refused
    assert branch_refusal("staging", Environment(), "refs/heads/feature") is None


def test_environment_secrets_reach_only_jobs_that_name_the_environment() -> None:
    environments = {
        "production": Environment(secrets={"AWS_SECRET_ACCESS_KEY": "prod"}),
        "pr-storage": Environment(secrets={"AWS_SECRET_ACCESS_KEY": "pr"}),
    }
    repository = {"GITOPS_APP_KEY": "app", "AWS_SECRET_ACCESS_KEY": "repo"}
    assert run_secrets(repository, environments, []) == repository
    run = run_secrets(repository, environments, ["production", "pr-storage"])
    # A job without environment reads the repository's; each environment's job its own,
    # the repository's where the environment has none of that name.
    assert run["AWS_SECRET_ACCESS_KEY"] == "repo"
    assert run["production__AWS_SECRET_ACCESS_KEY"] == "prod"
    assert run["pr-storage__AWS_SECRET_ACCESS_KEY"] == "pr"
    assert run["production__GITOPS_APP_KEY"] == "app"
    assert job_secrets(repository, environments, "pr-storage")["AWS_SECRET_ACCESS_KEY"] == "pr"
    assert job_secrets(repository, environments, None) == repository


def test_act_s_copy_makes_each_job_read_its_own_environment_s_secrets() -> None:
    text = (
        "on: push\njobs:\n"
        "  build:\n    environment: release\n    steps:\n"
        "      - run: echo ${{ secrets.KEY }} ${{ secrets.GITHUB_TOKEN }}\n"
        "  plain:\n    steps:\n      - run: echo ${{ secrets.KEY }}\n"
        "  apply:\n    environment: ${{ matrix.target }} # a matrix's\n    steps:\n"
        "      - run: echo ${{ secrets.KEY }}\n"
        "  named:\n    environment:\n      name: production-sync\n      url: x\n"
        "    steps:\n      - run: echo ${{ secrets.KEY }}\n"
    )
    copy = for_act(text)
    assert "echo ${{ secrets['release__KEY'] }} ${{ secrets.GITHUB_TOKEN }}" in copy
    assert "  plain:\n    steps:\n      - run: echo ${{ secrets.KEY }}" in copy
    assert "echo ${{ secrets[format('{0}__KEY', matrix.target)] }}" in copy
    assert "echo ${{ secrets['production-sync__KEY'] }}" in copy


def test_one_token_rule_for_kinds_and_scopes() -> None:
    assert [token_kind(t) for t in (WORKFLOW_TOKEN, READ_ONLY_TOKEN, APP_TOKEN, None)] == [
        "workflow",
        "read-only",
        "app",
        "none",
    ]
    comment_job = scopes_of({"contents": "read", "pull-requests": "write"})
    assert allowed("workflow", "issues", "write", comment_job)
    assert not allowed("workflow", "contents", "write", comment_job)
    assert not allowed("workflow", "pull-requests", "write", scopes_of(None))
    assert not allowed("read-only", "issues", "write")
    assert allowed("app", "contents", "write")
    assert not allowed("none", "contents", "read")
    # The relay's fine-grained token starts workflows and nothing else (#21).
    assert allowed("fine-grained-actions", "actions", "write")
    assert not allowed("fine-grained-actions", "contents", "write")
    assert not allowed("fine-grained-actions", "pull-requests", "write")
    assert not allowed("expired", "actions", "read")


def test_job_permissions_are_read_per_job() -> None:
    scopes = job_scopes(WORKFLOWS / "release.yml")
    assert scopes["image"] == {"contents": "read", "packages": "write"}
    assert scopes["staging"] == {"contents": "read", "id-token": "write"}  # OIDC
    assert scopes["approve"] == {}  # permissions: {}


def test_a_push_needs_contents_write_in_the_pushing_jobs_scopes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = Record(tmp_path)
    record.set_job_scopes({"comment": {"pull-requests": "write"}, "decide": {"contents": "write"}})
    monkeypatch.setenv("GITHUB_JOB", "comment")
    denied = permission_refusal(record, "workflow")
    assert denied == "Permission to gitops-ml/sandbox.git denied to github-actions[bot]."
    assert permission_refusal(record, "read-only") == denied
    monkeypatch.setenv("GITHUB_JOB", "decide")
    assert permission_refusal(record, "workflow") is None
    assert permission_refusal(record, "app") is None
    assert permission_refusal(record, "person") is None
