"""The deploy/image interface and the act harness's own checks (no act run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import deploy, image
from scripts.act import ActError, local_repository_args, triggers, workflows_for
from scripts.workspace import PROJECT_ROOT


def test_bento_tag_comes_from_the_archive_name() -> None:
    assert deploy.bento_tag(Path("dist/credit_risk-abc1234.bento")) == "credit_risk:abc1234"
    with pytest.raises(deploy.DeployError, match=r"expected <name>-<version>\.bento"):
        deploy.bento_tag(Path("dist/credit_risk.tar"))


def test_release_refuses_a_missing_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path))
    code = deploy.main(["release", "--env", "staging", "--bento-file", str(tmp_path / "x.bento")])
    assert code == 1
    assert "no such file" in capsys.readouterr().err


def test_apply_of_an_empty_state_says_to_release_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path))
    assert deploy.main(["apply", "--env", "staging"]) == 1
    assert "the state has no variants yet" in capsys.readouterr().err


def test_url_of_an_environment_never_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path))
    assert deploy.main(["url", "--env", "staging"]) == 1
    assert "nothing is deployed to staging" in capsys.readouterr().err


def test_image_skips_loudly_without_a_docker_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(image, "docker_available", lambda: False)
    assert image.main(["--bento-file", "dist/credit_risk-abc1234.bento"]) == 0
    assert "::notice::image: SKIPPED containerizing credit_risk:abc1234" in capsys.readouterr().out


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
