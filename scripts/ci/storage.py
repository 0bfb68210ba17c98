"""Where DVC keeps the pipeline's data, and whether a CI job can rely on it.

On GitHub every job starts from a fresh checkout on a machine of its own: a DVC remote
inside the checkout (the template's offline default, ``.dvc-storage``) is empty there, and
``dvc pull`` "succeeds" having restored nothing. :func:`storage_problem` names that case so
a workflow fails at once, with how to configure shared storage, instead of retraining (or
releasing nothing) in silence.

A pull request's job writes only the ``pr`` remote, the default remote + ``/pr``
(:func:`configure_pr_remote`, docs/storage-trust.md); :func:`reproduce` restores stages
from a remote other than the default.
"""

from __future__ import annotations

import os
import re
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


# The pull request remote (docs/storage-trust.md): the default remote's location + /pr, where
# a pull request's job (whose keys can write nowhere else) keeps its outputs and run-cache.
PR_REMOTE = "pr"


@dataclass(frozen=True)
class PrRemote:
    """The ``pr`` remote as :func:`configure_pr_remote` wrote it, and the remote it follows."""

    default: str
    default_url: str
    url: str


def pr_url(url: str) -> str:
    """``url`` + ``/pr``: a URL's path, or a folder (keeping how DVC resolves it)."""
    from dvc.config_schema import ExpPath, RelPath

    if re.match(r"\w+://", url):
        return f"{url.rstrip('/')}/{PR_REMOTE}"
    joined = os.path.join(url, PR_REMOTE)
    # DVC reads a relative folder as RelPath (made absolute) and "~/..." as ExpPath, and
    # writes them back as written: relative to the config file, or with "~". Keep the type.
    folder: str = joined
    if isinstance(url, ExpPath):
        folder = ExpPath(joined, f"{url.def_path.rstrip('/')}/{PR_REMOTE}")
    elif isinstance(url, RelPath):
        folder = RelPath(joined)
    return folder


def configure_pr_remote(root: Path) -> PrRemote:
    """Configure the local remote ``pr`` (``.dvc/config.local``) from the default remote.

    ``pr`` gets the default remote's settings (endpoint, region, profile ...) with its URL +
    ``/pr``; both remotes get ``verify = true``: what is pulled from them is hashed and
    dropped when its content does not match its name. Run again, it rewrites the same.

    Raises:
        ValueError: When there is no default remote, or it is ``pr`` itself.
    """
    from dvc.config import Config

    config = Config(dvc_dir=str(root / ".dvc"))
    merged = config.read()  # every level, without the schema's defaults
    default = merged["core"].get("remote")
    if not default or default == PR_REMOTE:
        raise ValueError(
            f"DVC remote {PR_REMOTE!r}: derived from the default remote, and the default is "
            f"{default!r}; set one (`dvc remote add -d NAME URL`)"
        )
    settings = dict(merged["remote"].get(default, {}))
    url = settings.pop("url", None)
    if not url:
        raise ValueError(f"DVC remote {PR_REMOTE!r}: the default remote {default!r} has no url")
    with config.edit("local") as local:
        local["remote"][PR_REMOTE] = {**settings, "url": pr_url(url), "verify": "true"}
        local["remote"].setdefault(default, {})["verify"] = "true"
    return PrRemote(default, str(url), str(pr_url(url)))


def reproduce(root: Path, remote: str) -> int:
    """``dvc repro --pull``, pulling missing outputs and the run-cache from ``remote``.

    ``dvc repro --pull`` reads only the default remote: a stage restored from a run-cache
    entry of ``remote`` needs that entry's outputs, which are there. The number of stages
    that ran or were restored.

    Raises:
        dvc.exceptions.DvcException: When a stage fails, or an output is missing everywhere.
    """
    from dvc.logger import setup
    from dvc.repo import Repo

    setup()  # dvc's own output: "Running stage ...", "Stage ... is cached"
    with Repo(str(root), remote=remote) as repo:
        return len(repo.reproduce(pull=True))
