"""Released Bentos kept in the shared storage, so any runner can deploy any of them.

A Bento lived only in the BentoML store of the machine that released it and in a workflow
artifact that expires: ``apply`` on a fresh runner, or a rollback to an old champion,
failed. Every released archive is now pushed next to the pipeline's data, under the DVC
default remote: ``<remote>/bentos/<name>/<version>.bento`` (an S3 bucket for a team, the
local folder on a laptop), through DVC's own filesystem for that remote — its endpoint,
credentials and profile, nothing configured twice. ``apply`` fetches a tag the state file
names that the environment's store lacks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from scripts.cd.errors import DeployError

PREFIX = "bentos"


def _remote(root: Path) -> tuple[Any, str]:
    """The default DVC remote's filesystem and the archive folder's path in it.

    Raises:
        DeployError: When the checkout has no default remote.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            remote = repo.cloud.get_remote()
    except DvcException as error:
        raise DeployError(f"no DVC remote to keep Bentos in: {error}") from error
    fs = remote.fs
    return fs, fs.join(remote.path, PREFIX)


def archive_path(base: str, tag: str, fs: Any) -> str:
    """Where the archive of ``name:version`` lives."""
    name, _, version = tag.partition(":")
    return str(fs.join(base, name, f"{version}.bento"))


def push(archive: Path, tag: str, root: Path = Path(".")) -> str:
    """Upload a released archive (once: a tag's archive never changes); its remote path."""
    fs, base = _remote(root)
    target = archive_path(base, tag, fs)
    if not fs.exists(target):
        fs.makedirs(fs.parent(target), exist_ok=True)
        fs.put_file(str(archive), target)
    return target


def fetch(tag: str, root: Path = Path(".")) -> Path:
    """Download the archive of ``tag`` into a temporary file (the caller imports it).

    Raises:
        DeployError: When the shared storage has no archive for ``tag``.
    """
    fs, base = _remote(root)
    source = archive_path(base, tag, fs)
    if not fs.exists(source):
        raise DeployError(
            f"{tag} is in no BentoML store here and not in the shared storage ({source})"
        )
    name, _, version = tag.partition(":")
    local = Path(tempfile.mkdtemp(prefix="gitops-ml-bento-")) / f"{name}-{version}.bento"
    fs.get_file(source, str(local))
    return local
