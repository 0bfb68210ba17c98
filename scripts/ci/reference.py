"""The reference model a candidate is compared with: production's champion, else main's.

After a rollback, main's model is the rejected challenger, not what serves; so the
reference is the champion named by ``bentos/deployments/production.yaml`` when its Bento
version is a commit of this repository (``make bento`` names Bentos by git short sha), and
the model of the ``--against`` reference otherwise. The model file is read at that commit
through DVC (``dvc.api.read``: the local cache, else the remote).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.cd.state import StateError, load_state

MODEL_PATH = "models/model.onnx"


@dataclass(frozen=True)
class Reference:
    """A reference model: the commit it comes from, why it was chosen, its ONNX bytes."""

    revision: str
    why: str
    model: bytes


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def is_commit(revision: str) -> bool:
    """Whether ``revision`` names a commit of the repository in the working directory."""
    return _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").returncode == 0


def champion_revision(state_file: Path) -> tuple[str | None, str]:
    """The commit production's champion was built from, if the state names one; and why not."""
    if not state_file.is_file():
        return None, f"no {state_file}"
    try:
        champion = load_state(state_file).champion
    except StateError as error:
        return None, f"{state_file} unreadable ({error})"
    if champion is None:
        return None, "production has no champion yet"
    version = champion.bento.split(":", 1)[1]
    if not is_commit(version):
        return None, f"the champion {champion.bento} is not named after a commit"
    return version, f"production's champion {champion.bento}"


def tracks_model(revision: str, path: str = MODEL_PATH) -> bool:
    """Whether ``dvc.lock`` at ``revision`` records ``path`` (false before the first model)."""
    shown = _git("show", f"{revision}:dvc.lock")
    if shown.returncode != 0:
        return False
    lock = yaml.safe_load(shown.stdout) or {}
    return any(
        out.get("path") == path
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    )


def read_model(revision: str, path: str = MODEL_PATH) -> bytes:
    """The model file at ``revision``, through DVC.

    Raises:
        RuntimeError: Naming the revision and file when neither the cache nor the remote
            has it.
    """
    import dvc.api

    try:
        data: bytes = dvc.api.read(path, repo=".", rev=revision, mode="rb")
    except Exception as error:  # dvc raises many types (missing cache, remote, git); report all
        raise RuntimeError(
            f"reference model {revision}:{path} is in dvc.lock but neither in the DVC cache "
            f"nor in the remote ({type(error).__name__}: {error}); push it with `dvc push`"
        ) from error
    return data


def find_reference(against: str, state_file: Path) -> tuple[Reference | None, str]:
    """The reference model, or None with the reason (e.g. the first PR has none).

    Raises:
        RuntimeError: When the reference commit records a model that cannot be read.
    """
    revision, why = champion_revision(state_file)
    if revision is not None and tracks_model(revision):
        return Reference(revision, why, read_model(revision)), why
    reason = why if revision is None else f"{why} has no model in its dvc.lock"
    why = f"the model of {against} ({reason})"
    if not tracks_model(against):
        return None, f"no model recorded in dvc.lock at {against}"
    return Reference(against, why, read_model(against)), why
