"""A temporary copy of the repository where the real `dvc` and `python -m pipeline.*` run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import REPO_ROOT, raw_params, set_dotted

# Pipeline outputs are produced by the run under test, never copied from the checkout.
_OUTPUTS = ("dvc.lock", "metrics.json", "reports/", "data/raw/", "data/split/", "models/")
SMALL = {
    "data.generator.n_rows": 2_000,
    "train.sklearn.n_estimators": 30,
    "train.torch.epochs": 3,
    "train.torch.lr": 0.005,
}


def _source_files() -> Iterable[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in listed.split("\0"):
        if name and not name.startswith(_OUTPUTS) and (REPO_ROOT / name).is_file():
            yield name


@dataclass
class Repo:
    """A git + DVC working copy of the project."""

    path: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the copy with the project's venv first on PATH."""
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
            "MPLBACKEND": "Agg",
        }
        result = subprocess.run(
            list(args), cwd=self.path, env=env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def set_params(self, overrides: dict[str, Any]) -> None:
        """Rewrite params.yaml with dotted-key overrides."""
        path = self.path / "params.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for dotted, value in overrides.items():
            set_dotted(raw, dotted, value)
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")

    def md5(self, relative: str) -> str:
        """MD5 of a file in the copy."""
        return hashlib.md5((self.path / relative).read_bytes(), usedforsecurity=False).hexdigest()

    def clone_to(self, destination: Path) -> Repo:
        """Copy the working copy (with its DVC cache) to a new place."""
        shutil.copytree(self.path, destination, symlinks=True)
        return Repo(destination)


def make_repo(destination: Path, overrides: dict[str, Any] | None = None) -> Repo:
    """Copy the project's source files to ``destination`` and commit them to a new git repo."""
    for name in _source_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    repo = Repo(destination)
    raw = raw_params()
    for dotted, value in {**SMALL, **(overrides or {})}.items():
        set_dotted(raw, dotted, value)
    (destination / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    repo.run("git", "init", "-q", "-b", "main")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "template")
    return repo


@pytest.fixture(scope="module")
def sklearn_run(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A copy where `dvc repro` has run once with the scikit-learn model."""
    repo = make_repo(tmp_path_factory.mktemp("sklearn") / "repo")
    repo.run("dvc", "repro")
    return repo
