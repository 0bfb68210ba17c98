"""The pull request remote ``pr``: the default remote + /pr, in .dvc/config.local."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from configobj import ConfigObj

from scripts import storage
from scripts.ci.storage import configure_pr_remote, pr_url


def dvc(path: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=path, check=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    dvc(tmp_path, "init", "-q")
    return tmp_path


def local_config(checkout: Path) -> dict[str, dict[str, str]]:
    return dict(ConfigObj(str(checkout / ".dvc" / "config.local")).dict())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/dvc-team", "s3://bucket/dvc-team/pr"),
        ("s3://bucket/dvc-team/", "s3://bucket/dvc-team/pr"),
        ("/srv/dvc-storage", "/srv/dvc-storage/pr"),
    ],
)
def test_the_pr_url_is_the_default_s_plus_pr(url: str, expected: str) -> None:
    assert pr_url(url) == expected


def test_an_s3_remote_s_endpoint_settings_carry_over(checkout: Path) -> None:
    dvc(checkout, "remote", "add", "-d", "shared", "s3://bucket/dvc-team")
    dvc(checkout, "remote", "modify", "shared", "endpointurl", "http://127.0.0.1:9000")
    dvc(checkout, "remote", "modify", "--local", "shared", "profile", "team")
    remote = configure_pr_remote(checkout)
    assert (remote.default, remote.url) == ("shared", "s3://bucket/dvc-team/pr")
    written = local_config(checkout)
    assert written['remote "pr"'] == {
        "url": "s3://bucket/dvc-team/pr",
        "endpointurl": "http://127.0.0.1:9000",
        "profile": "team",
        "verify": "true",
    }
    assert written['remote "shared"'] == {"profile": "team", "verify": "true"}
    assert "pr" not in (checkout / ".dvc" / "config").read_text(encoding="utf-8")


def test_a_local_folder_remote_stays_relative_to_the_config_file(checkout: Path) -> None:
    (checkout / ".dvc" / "config").write_text(
        "[core]\n    remote = local\n['remote \"local\"']\n    url = ../.dvc-storage\n",
        encoding="utf-8",
    )
    configure_pr_remote(checkout)
    configure_pr_remote(checkout)  # again: the same configuration
    assert local_config(checkout)['remote "pr"'] == {
        "url": "../.dvc-storage/pr",
        "verify": "true",
    }


def test_no_default_remote_is_refused(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert storage.main(["pr-remote", "--root", str(checkout)]) == 1
    assert "derived from the default remote, and the default is None" in capsys.readouterr().err
    assert not (checkout / ".dvc" / "config.local").exists()
