"""The delivery commands' interface: deploy and image errors are one line (no process runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.exit_codes import ExitCode
from scripts import deploy, image
from scripts.cd import local_driver
from scripts.cd.bento_store import bento_tag
from scripts.cd.checks import wait_ready
from scripts.cd.errors import DeployError
from scripts.cd.processes import free_port
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import DeploymentState, parse_state, save_state


def test_bento_tag_comes_from_the_archive_name() -> None:
    assert bento_tag(Path("dist/credit_risk-abc1234.bento")) == "credit_risk:abc1234"
    with pytest.raises(DeployError, match=r"expected <name>-<version>\.bento"):
        bento_tag(Path("dist/credit_risk.tar"))


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


def test_url_of_an_environment_served_elsewhere_is_its_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path))
    state_dir = tmp_path / "deployments"
    save_state(
        parse_state({"environment": "production", "driver": "kubernetes"}, Path("x")),
        state_dir / "production.yaml",
    )
    args = ["url", "--env", "production", "--state-dir", str(state_dir)]
    assert deploy.main(args) == 1
    assert "set GITOPS_ML_PRODUCTION_URL to its gateway URL" in capsys.readouterr().err
    monkeypatch.setenv("GITOPS_ML_PRODUCTION_URL", "https://models.example.com/")
    assert deploy.main(args) == 0
    assert capsys.readouterr().out == "https://models.example.com\n"


def test_image_skips_loudly_without_a_docker_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(image, "docker_available", lambda: False)
    assert image.main(["--bento-file", "dist/credit_risk-abc1234.bento"]) == 0
    assert "::notice::image: SKIPPED containerizing credit_risk:abc1234" in capsys.readouterr().out


def test_a_router_that_never_gets_ready_is_one_deploy_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never_ready(settings: DriverSettings, state: DeploymentState) -> None:
        wait_ready(f"http://127.0.0.1:{free_port()}", timeout=0.2)

    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path))
    monkeypatch.setattr(local_driver, "apply", never_ready)
    state_dir = tmp_path / "deployments"
    state = {
        "environment": "staging",
        "variants": [{"name": "champion", "bento": "a:b", "weight": 100}],
    }
    save_state(parse_state(state, Path("staging.yaml")), state_dir / "staging.yaml")
    code = deploy.main(["apply", "--env", "staging", "--state-dir", str(state_dir)])
    err = capsys.readouterr().err
    assert code == ExitCode.FOUND_PROBLEM
    assert err.startswith("deploy: /readyz: http://127.0.0.1:")
    assert err.endswith("not ready after 0 s\n")
    assert err.count("\n") == 1


def test_a_bad_port_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITOPS_ML_STAGING_PORT", "80a")
    assert deploy.main(["url", "--env", "staging"]) == ExitCode.FOUND_PROBLEM
    assert "GITOPS_ML_STAGING_PORT: expected a TCP port (1-65535), got '80a'" in (
        capsys.readouterr().err
    )


def test_reconcile_before_the_first_release_runs_nothing_and_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """deploy.yml's schedule runs from the day a team adopts the template: green, idle."""
    monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(tmp_path / "run"))
    save_state(parse_state({"environment": "staging"}, Path("x")), tmp_path / "staging.yaml")
    code = deploy.main(["reconcile", "--env", "staging", "--state-dir", str(tmp_path)])
    assert code == ExitCode.OK
    out = capsys.readouterr().out
    assert "- did: nothing to run: staging has had no release yet" in out
    assert "- now: healthy" in out
    assert not (tmp_path / "run" / "staging").exists()  # no supervisor was started
