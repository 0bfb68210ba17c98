"""Test helpers in one place: data and params factories, and working copies of the project.

Imported by the tests that need them (never from a conftest).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipeline.generate import Window, generate
from pipeline.params import Params, parse_params
from scripts.dev.workspace import copy_project, edit_yaml, set_dotted, tool_env

REPO_ROOT = Path(__file__).resolve().parents[1]


def raw_params() -> dict[str, Any]:
    """The repository's params.yaml as plain data, for tests to modify."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    return data


def make_params(**overrides: Any) -> Params:
    """The repository's params with dotted-key overrides, e.g. ``{"train.model": "torch"}``."""
    raw = raw_params()
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return parse_params(raw)


def make_credit_frame(n: int = 200, seed: int = 0, **window: Any) -> pd.DataFrame:
    """A synthetic credit table (the demo generator), valid under the repository's schema."""
    return generate(n, seed, Window(**window))


SMALL = {
    "data.generator.n_rows": 2_000,
    "train.sklearn.n_estimators": 30,
    "train.torch.epochs": 3,
    "train.torch.lr": 0.005,
}


@dataclass
class Repo:
    """A git + DVC working copy of the project."""

    path: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the copy with the project's venv first on PATH."""
        result = subprocess.run(
            list(args), cwd=self.path, env=self.env(), capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for commands in this copy: its own BentoML store, nothing tracked."""
        return {
            **tool_env(),
            "BENTOML_HOME": str(self.path / ".bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            **extra,
        }

    def set_params(self, overrides: dict[str, Any]) -> None:
        """Rewrite params.yaml with dotted-key overrides."""
        edit_yaml(self.path / "params.yaml", overrides)

    def md5(self, relative: str) -> str:
        """MD5 of a file in the copy."""
        return hashlib.md5((self.path / relative).read_bytes(), usedforsecurity=False).hexdigest()

    def clone_to(self, destination: Path) -> Repo:
        """Copy the working copy (with its DVC cache) to a new place."""
        shutil.copytree(self.path, destination, symlinks=True)
        return Repo(destination)


def make_repo(destination: Path, overrides: dict[str, Any] | None = None) -> Repo:
    """Copy the project to ``destination`` with small data and the given param overrides."""
    repo = Repo(copy_project(destination))
    repo.set_params({**SMALL, **(overrides or {})})
    repo.run("git", "commit", "-q", "-am", "small data for tests")
    return repo


class DefectPresent(AssertionError):
    """A scenario's defect is still there: the one failure its strict xfail expects.

    Scenarios mark ``xfail(strict=True, raises=DefectPresent)``: any other failure (a
    fixture that could not start, a setup check) fails the suite instead of passing as
    "expected"; a fixed defect passes the scenario and the strict mark turns that red until
    the fixing issue removes it.
    """


def scenario(issue: int, reason: str) -> pytest.MarkDecorator:
    """Mark a defect scenario: it fails with :class:`DefectPresent` until #issue fixes it."""
    return pytest.mark.xfail(strict=True, raises=DefectPresent, reason=f"#{issue}: {reason}")


def defect(present: bool, message: str) -> None:
    """Raise :class:`DefectPresent` with ``message`` when ``present``."""
    if present:
        raise DefectPresent(message)
