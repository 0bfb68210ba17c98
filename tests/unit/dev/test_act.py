"""The act harness's own checks (no act run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.dev.act import ActError, local_repository_args, triggers, workflows_for
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
