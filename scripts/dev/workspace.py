"""A throw-away copy of the project (source files only) for benchmarks and tests."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Pipeline outputs are produced by the run in the copy, never carried over.
PIPELINE_OUTPUTS = ("dvc.lock", "metrics.json", "reports/", "data/raw/", "data/split/", "models/")
# A copy's DVC configuration: the template's offline default, a folder beside the copy's
# files (git-ignored). An adopted repository's own remote (a team's S3 bucket, reached with
# keys a copy does not have) never reaches a copy; whoever needs shared storage configures
# it on the copy (``S3Endpoint.configure_dvc``).
COPY_DVC_CONFIG = """[core]
    analytics = false
    remote = local
['remote "local"']
    url = ../.dvc-storage
"""


def source_files(root: Path = PROJECT_ROOT) -> Iterator[str]:
    """Files git tracks or would track (untracked, not ignored), minus pipeline outputs.

    Args:
        root: The project checkout.

    Yields:
        Paths relative to ``root``.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in listed.split("\0"):
        if name and not name.startswith(PIPELINE_OUTPUTS) and (root / name).is_file():
            yield name


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted == "a.b"``."""
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value


def edit_yaml(path: Path, overrides: Mapping[str, Any]) -> None:
    """Rewrite a YAML file (params.yaml, a state file) with dotted-key overrides."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def tool_env() -> dict[str, str]:
    """The environment for commands in a copy: this interpreter's venv first on PATH."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "gitops-ml",
        "GIT_AUTHOR_EMAIL": "gitops-ml@example.invalid",
        "GIT_COMMITTER_NAME": "gitops-ml",
        "GIT_COMMITTER_EMAIL": "gitops-ml@example.invalid",
        "MPLBACKEND": "Agg",
        "BENTOML_DO_NOT_TRACK": "true",
    }


@functools.cache
def uv_cache_dir() -> str:
    """Where this user's uv keeps its cache (``uv cache dir``: ``UV_CACHE_DIR`` or HOME's).

    The services' interpreters (:mod:`scripts.cd.interpreters`) are built from it; the
    harness's machines, with homes of their own, are given this one, as a prepared deploy
    host has its own warm cache.
    """
    from scripts.cd.interpreters import uv_command

    result = subprocess.run(
        [uv_command(), "cache", "dir"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def copy_project(destination: Path, root: Path = PROJECT_ROOT) -> Path:
    """Copy the project's source files and commit them to a new git repository.

    The copy stores DVC data in a folder of its own (:data:`COPY_DVC_CONFIG`), whatever
    remote the project names.

    Args:
        destination: An empty or missing directory.
        root: The project checkout to copy.

    Returns:
        ``destination``.
    """
    for name in source_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    (destination / ".dvc" / "config").write_text(COPY_DVC_CONFIG, encoding="utf-8")
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"]):
        subprocess.run(command, cwd=destination, env=tool_env(), check=True)
    subprocess.run(
        ["git", "commit", "-q", "-m", "gitops-ml template"],
        cwd=destination,
        env=tool_env(),
        check=True,
    )
    return destination
