"""The act harness's own checks (no act run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.machines import (
    MACHINES,
    cache_keys,
    evaluate_key,
    runner_labels,
    self_hosted_jobs,
)
from scripts.dev.harness.runs import ActRun, local_repository_args
from scripts.dev.harness.sandbox import Sandbox
from scripts.dev.harness.workflows import (
    environment_groups,
    triggered_workflows,
    triggers,
    waiting_jobs,
    workflows_for,
)
from scripts.dev.workspace import PROJECT_ROOT


def test_every_pinned_action_has_a_stand_in() -> None:
    args = local_repository_args(PROJECT_ROOT)
    mapped = {arg.split("@")[0] for arg in args[1::2]}
    assert {"actions/setup-python", "actions/upload-artifact", "iterative/setup-cml"} <= mapped


def test_an_action_without_a_stand_in_is_an_error(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "x.yml").write_text(
        "on: push\njobs:\n  a:\n    steps:\n      - uses: evil/action@" + "a" * 40 + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ActError, match=r"evil/action@a+: no stand-in"):
        local_repository_args(tmp_path)


def test_triggers_and_workflows_for_an_event() -> None:
    assert triggers({True: {"push": None, "schedule": []}}) == {"push", "schedule"}
    assert triggers({"on": "push"}) == {"push"}
    names = {path.name for path in workflows_for(PROJECT_ROOT, "pull_request")}
    assert names == {"ci.yml", "train.yml"}


def test_jobs_targeting_a_protected_environment_wait_for_a_reviewer() -> None:
    workflows = PROJECT_ROOT / ".github" / "workflows"
    # The hourly decision targets no environment: it never waits (its gate is the state PR).
    assert waiting_jobs(workflows / "promote.yml", {"production"}) == []
    # A matrix over environments waits when any of them is protected; applying what git
    # holds targets production's reviewer-less environment (one approval per release).
    assert waiting_jobs(workflows / "deploy.yml", {"production"}) == []
    assert waiting_jobs(workflows / "deploy.yml", {"production-sync"}) == ["apply"]
    # A release's one approval: a job of its own, holding no lock while it waits.
    assert waiting_jobs(workflows / "release.yml", {"production"}) == ["approve"]


def test_only_known_rules_can_be_relaxed(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.relax("orphan-cleanup", "issue 13")
    assert sandbox.relaxed == {"orphan-cleanup": "issue 13"}
    with pytest.raises(ActError, match="unknown rule 'no-such-rule'"):
        sandbox.relax("no-such-rule", "x")


def test_paths_and_branches_filters_decide_which_workflows_start() -> None:
    # train.yml has no paths filter (a required check): every PR starts it.
    for changed in (["README.md"], ["params.yaml"]):
        assert triggered_workflows(PROJECT_ROOT, "pull_request", changed, "main") == [
            "ci.yml",
            "train.yml",
        ]
    assert "deploy.yml" in triggered_workflows(
        PROJECT_ROOT, "push", ["bentos/deployments/k8s/production/a.yaml"], "main"
    )
    assert "deploy.yml" not in triggered_workflows(PROJECT_ROOT, "push", ["README.md"], "main")
    assert triggered_workflows(PROJECT_ROOT, "push", ["bentos/deployments/a.yaml"], "dev") == []


def test_concurrency_groups_are_collected_per_environment(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "a.yml").write_text(
        """
on: push
concurrency: {group: prod}
jobs:
  x: {runs-on: self-hosted, environment: production, steps: []}
  y:
    runs-on: self-hosted
    environment: ${{ matrix.e }}
    strategy: {matrix: {e: [staging, production]}}
    steps: []
""",
        encoding="utf-8",
    )
    (workflows / "b.yml").write_text(
        """
on: push
jobs:
  z: {runs-on: self-hosted, environment: {name: production}, steps: []}
""",
        encoding="utf-8",
    )
    assert environment_groups(tmp_path) == {
        "production": {"prod", "(none) b.yml/z"},
        "staging": {"prod"},
    }
    # A matrix job's group takes the value of the environment it targets.
    (workflows / "c.yml").write_text(
        """
on: push
jobs:
  w:
    runs-on: self-hosted
    environment: ${{ matrix.e }}
    strategy: {matrix: {e: [staging, production]}}
    concurrency: {group: "env-${{ matrix.e }}"}
    steps: []
""",
        encoding="utf-8",
    )
    groups = environment_groups(tmp_path)
    assert groups["staging"] == {"prod", "env-staging"}
    assert "env-production" in groups["production"]


def test_runner_labels_follow_the_variable_or_its_default() -> None:
    runs_on = '${{ fromJSON(vars.TRAIN_RUNNER || \'["self-hosted", "gpu"]\') }}'
    assert runner_labels(runs_on, {}) == ["self-hosted", "gpu"]
    assert runner_labels(runs_on, {"TRAIN_RUNNER": '["ubuntu-latest"]'}) == ["ubuntu-latest"]
    assert runner_labels(["self-hosted", "deploy"], {}) == ["self-hosted", "deploy"]
    train = PROJECT_ROOT / ".github" / "workflows" / "train.yml"
    assert self_hosted_jobs(train, {}) == {"train"}
    assert self_hosted_jobs(train, {"TRAIN_RUNNER": '["ubuntu-latest"]'}) == set()


def test_a_forks_pull_request_goes_to_the_hosted_labels() -> None:
    train = PROJECT_ROOT / ".github" / "workflows" / "train.yml"
    assert self_hosted_jobs(train, {}, fork=False) == {"train"}
    assert self_hosted_jobs(train, {}, fork=True) == set()
    # Even when the team moved training elsewhere, a fork stays on hosted runners.
    moved = {"TRAIN_RUNNER": '["self-hosted", "big"]'}
    assert self_hosted_jobs(train, moved, fork=True) == set()


def test_an_expression_the_harness_does_not_know_is_an_error() -> None:
    with pytest.raises(ActError, match="unsupported"):
        runner_labels("${{ github.event.inputs.runner }}", {})


def test_a_cache_key_as_each_machine_computes_it() -> None:
    hosted, self_hosted = MACHINES["github-hosted"], MACHINES["self-hosted"]
    template = (
        "venv-${{ runner.environment }}-${{ steps.py.outputs.python-version }}-"
        "${{ inputs.torch-index }}-${{ hashFiles('pyproject.toml') }}-${{ github.sha }}"
    )
    inputs = {"torch-index": "cpu"}
    assert evaluate_key(template, hosted, inputs) == (
        "venv-github-hosted-3.11.14-cpu-<hash of the commit's files>-${{ github.sha }}"
    )
    assert evaluate_key(template, self_hosted, inputs).startswith("venv-self-hosted-3.11.2-cpu-")
    (key, defaults), *_ = cache_keys(PROJECT_ROOT / ".github" / "actions" / "setup" / "action.yml")
    assert key.startswith("venv-")
    assert "torch-index" in defaults


def test_each_job_reports_a_status_and_a_job_that_never_ran_stays_pending(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.record.mkdir()
    run = ActRun(
        "train.yml",
        "pull_request",
        1,
        {"train": "failure"},
        ["train", "comment"],
        tmp_path / "log",
        1.0,
    )
    run.names = {"train": "dvc repro, gates, report"}  # a job without a name: its id
    sandbox.record_statuses(run, "abc")
    assert sandbox.statuses("abc") == {"dvc repro, gates, report": "failure", "comment": "pending"}
    assert sandbox.statuses("def") == {}
