"""Which DVC remotes can carry data from one CI job to the next."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import storage
from scripts.ci.storage import Remote, default_remote, storage_problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://team-bucket/dvc", None),
        ("gs://team-bucket/dvc", None),
        ("/srv/dvc-storage", None),  # a self-hosted runner's shared disk, outside the checkout
        ("CHECKOUT/.dvc-storage", "a folder inside the checkout"),
        ("file://CHECKOUT/.dvc-storage", "a folder inside the checkout"),
    ],
)
def test_a_remote_inside_the_checkout_is_refused(
    tmp_path: Path, url: str, problem: str | None
) -> None:
    found = storage_problem(tmp_path, Remote("shared", url.replace("CHECKOUT", str(tmp_path))))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        assert "dvc remote add -d shared s3://" in found


def test_no_remote_at_all_is_refused(tmp_path: Path) -> None:
    assert "no default DVC remote" in str(storage_problem(tmp_path, Remote(None, None)))


def init_dvc(path: Path, *remote: str) -> None:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True)
    if remote:
        subprocess.run(
            [sys.executable, "-m", "dvc", "remote", "add", "-d", *remote], cwd=path, check=True
        )


def test_the_template_default_fails_on_github_and_is_a_note_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    init_dvc(tmp_path, "local", ".dvc-storage")  # .dvc/config: url = ../.dvc-storage
    remote = default_remote(tmp_path)
    assert remote.name == "local"
    assert remote.local_path is not None
    assert remote.local_path.resolve() == (tmp_path / ".dvc-storage").resolve()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert storage.main(["check", "--root", str(tmp_path)]) == 1
    assert "::error title=DVC storage::the DVC remote 'local'" in capsys.readouterr().out
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert storage.main(["check", "--root", str(tmp_path)]) == 0
    assert "note (fine on this machine, not on GitHub)" in capsys.readouterr().out
