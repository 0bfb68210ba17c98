"""Who holds a token, and what it may do: the one token rule of the harness.

The sandbox hands out four kinds of token, as GitHub would (GitHub docs, "Automatic token
authentication", "Permissions for the GITHUB_TOKEN"; "Authenticating as a GitHub App
installation"):

* ``workflow``: a run's ``GITHUB_TOKEN``, scoped by the job's ``permissions:``; the events it
  causes start no workflow (except ``workflow_dispatch``/``repository_dispatch``);
* ``read-only``: a fork's (or Dependabot's) pull request token, whatever ``permissions:`` say;
* ``app``: an installation token of the repository's GitHub App (contents and pull requests:
  write), whose events do start workflows;
* ``none``: no token at all: a person at a laptop pushing with their own credentials
  (``person`` in the push record).

Every stand-in (the ``gh``/``cml`` recorder, the origin's hooks, the HTTP API) asks
:func:`token_kind` and :func:`allowed`; nothing else decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

REPOSITORY = "gitops-ml/sandbox"
FORK = "someone/sandbox"
# The secret act hands the workflows as GITHUB_TOKEN.
WORKFLOW_TOKEN = "act-sandbox-token"
# A fork's pull request gets a read-only GITHUB_TOKEN and no other secret.
READ_ONLY_TOKEN = "act-sandbox-read-only-token"
# What actions/create-github-app-token's stand-in outputs: the App's installation token.
APP_TOKEN = "act-sandbox-app-token"
# What the deploy runner gives the retraining relay (a file): a fine-grained token with
# Actions: read and write on this repository only (README, "Alert-triggered retraining").
DISPATCH_TOKEN = "act-sandbox-dispatch-token"
# A fine-grained token with Contents: write only (what the relay needed before #21).
CONTENTS_TOKEN = "act-sandbox-contents-token"
# A token GitHub knew but that expired or was revoked: refused as an unknown one (401).
EXPIRED_TOKEN = "act-sandbox-expired-token"
EXPIRED = "expired"
# Fine-grained personal access tokens: the repository permissions each kind holds (GitHub
# docs, "Permissions required for fine-grained personal access tokens"; Metadata: read comes
# with every one).
FINE_GRAINED: Mapping[str, Mapping[str, str]] = {
    "fine-grained-actions": {"actions": "write", "metadata": "read"},
    "fine-grained-contents": {"contents": "write", "metadata": "read"},
}
KINDS: Mapping[str, str] = {
    WORKFLOW_TOKEN: "workflow",
    READ_ONLY_TOKEN: "read-only",
    APP_TOKEN: "app",
    DISPATCH_TOKEN: "fine-grained-actions",
    CONTENTS_TOKEN: "fine-grained-contents",
    EXPIRED_TOKEN: EXPIRED,
}
# The App's installation permissions (README, "GitHub App"): what its token may write.
APP_SCOPES: Mapping[str, str] = {"contents": "write", "pull-requests": "write", "actions": "read"}
# GITHUB_TOKEN when a workflow declares no ``permissions:`` (a new repository's default,
# "Read repository contents and packages permissions").
DEFAULT_WORKFLOW_SCOPES: Mapping[str, str] = {"contents": "read", "packages": "read"}
LEVELS = {"none": 0, "read": 1, "write": 2}


def token_kind(token: str | None) -> str:
    """``workflow``, ``read-only``, ``app`` for a known token; ``none`` without one.

    An unknown non-empty token is taken as an App's or a PAT (the HTTP API refuses it: 401).
    """
    if not token:
        return "none"
    return KINDS.get(token, "app")


def caller_kind(environ: Mapping[str, str] = os.environ) -> str:
    """The kind of token a stand-in's caller holds (``GH_TOKEN``, else ``GITHUB_TOKEN``)."""
    return token_kind(environ.get("GH_TOKEN") or environ.get("GITHUB_TOKEN"))


def scopes_of(permissions: object) -> dict[str, str]:
    """A job's ``permissions:`` as ``{scope: level}`` (``read-all``/``write-all``/``{}``)."""
    if permissions is None:
        return dict(DEFAULT_WORKFLOW_SCOPES)
    if permissions in ("read-all", "write-all"):
        level = str(permissions).removesuffix("-all")
        return {scope: level for scope in ("contents", "pull-requests", "issues", "actions")}
    if isinstance(permissions, Mapping):
        return {str(scope): str(level) for scope, level in permissions.items()}
    return {}


def allowed(kind: str, scope: str, level: str, scopes: Mapping[str, str] | None = None) -> bool:
    """May a token of ``kind`` (with a job's ``scopes``, for a workflow token) do this?

    Args:
        kind: :func:`token_kind`'s answer.
        scope: ``contents``, ``pull-requests``, ``issues``, ``actions``...
        level: ``read`` or ``write``.
        scopes: The job's permissions, for a ``workflow`` token (None: not known, allowed).
    """
    if kind in ("none", EXPIRED):
        return False
    if kind == "read-only":
        return level == "read"
    held = APP_SCOPES if kind == "app" else FINE_GRAINED.get(kind, scopes)
    if held is None:
        return True
    # A comment on a pull request is an issue comment: either scope may write it.
    if scope == "issues" and LEVELS.get(held.get("pull-requests", "none"), 0) >= LEVELS[level]:
        return True
    return LEVELS.get(held.get(scope, "none"), 0) >= LEVELS[level]
