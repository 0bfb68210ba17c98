"""Where DVC keeps the pipeline's data, and whether a CI job can rely on it.

On GitHub every job starts from a fresh checkout on a machine of its own: a DVC remote
inside the checkout (the template's offline default, ``.dvc-storage``) is empty there, and
``dvc pull`` "succeeds" having restored nothing. :func:`storage_problem` names that case so
a workflow fails at once, with how to configure shared storage, instead of retraining (or
releasing nothing) in silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

HOW_TO = (
    "Configure shared storage that every runner reaches, e.g. an S3 bucket: "
    "`dvc remote add -d shared s3://BUCKET/dvc` (plus `dvc remote modify shared endpointurl URL` "
    "for MinIO or another S3-compatible server), commit .dvc/config, and give the workflows "
    "credentials (README, 'Shared storage')"
)


@dataclass(frozen=True)
class Remote:
    """The default DVC remote of a checkout."""

    name: str | None
    url: str | None

    @property
    def local_path(self) -> Path | None:
        """The folder of a local remote; None for a cloud URL or no remote."""
        if not self.url:
            return None
        scheme = urlparse(self.url).scheme
        return Path(self.url) if scheme in ("", "file") or len(scheme) == 1 else None


def default_remote(root: Path) -> Remote:
    """The default remote as DVC sees it (repository, local and global config merged)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        config = repo.config
        name = config["core"].get("remote")
        url = config["remote"].get(name, {}).get("url") if name else None
    return Remote(name, str(url) if url else None)


def storage_problem(root: Path, remote: Remote) -> str | None:
    """Why ``remote`` cannot carry data between CI jobs, or None when it can.

    Args:
        root: The checkout.
        remote: Its default remote (:func:`default_remote`).
    """
    if remote.name is None:
        return f"no default DVC remote: every job would retrain from scratch. {HOW_TO}."
    path = remote.local_path
    if path is None:
        return None
    folder = path if path.is_absolute() else root / path
    if folder.resolve().is_relative_to(root.resolve()):
        return (
            f"the DVC remote {remote.name!r} is {folder}, a folder inside the checkout: on "
            "GitHub each job starts from a fresh checkout, so it is empty on every runner "
            f"and nothing a job pushes reaches the next one. {HOW_TO}."
        )
    return None
