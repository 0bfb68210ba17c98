"""Every call to CML or the GitHub CLI goes through here: PR comments and bot PRs.

CML has had no release since 2024-10, so each operation has a ``gh`` path too:

* ``python -m scripts.comment pr FILE`` posts FILE as the pull request's ONE sticky comment,
  found again by its watermark title and updated in place on every push. With ``cml``:
  ``cml comment update --target=pr/<n> --watermark-title=<title> --publish=false`` (no image
  upload to CML's asset host). With ``gh``: the REST API, the watermark being an HTML comment.
* ``python -m scripts.comment open-pr --head BRANCH --title T --body-file F`` opens a pull
  request from a pushed branch unless one is already open for it (``gh`` only: CML's
  ``pr create`` commits and pushes by itself, which is not what the callers want).

``--backend`` (or ``GITOPS_ML_COMMENTER``) chooses ``cml``, ``gh`` or ``auto`` (the default:
cml when on PATH, else gh). Standard library only: it runs before any project install.
Tokens come from the environment (``REPO_TOKEN`` for cml, ``GH_TOKEN`` for gh) and are
never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_WATERMARK = "gitops-ml model report"


class CommentError(RuntimeError):
    """The comment or PR could not be posted; the message says why."""


def choose_backend(requested: str) -> str:
    """``cml`` or ``gh``: the requested one if on PATH, or the first found for ``auto``."""
    candidates = ("cml", "gh") if requested == "auto" else (requested,)
    for name in candidates:
        if shutil.which(name):
            return name
    raise CommentError(
        f"{' nor '.join(candidates)} not found on PATH (backend {requested!r}): install CML "
        "with iterative/setup-cml, or use gh (preinstalled on GitHub-hosted runners)"
    )


def pr_number(explicit: int | None, env: Mapping[str, str]) -> int:
    """The pull request number: ``--pr``, else the event payload of the workflow run."""
    if explicit is not None:
        return explicit
    event_path = env.get("GITHUB_EVENT_PATH")
    if event_path and Path(event_path).is_file():
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        number = event.get("pull_request", {}).get("number") or event.get("number")
        if isinstance(number, int):
            return number
    raise CommentError("no pull request number: pass --pr, or run on a pull_request event")


def repository(env: Mapping[str, str]) -> str:
    """``owner/name`` from ``GITHUB_REPOSITORY``."""
    repo = env.get("GITHUB_REPOSITORY", "")
    if "/" not in repo:
        raise CommentError(f"GITHUB_REPOSITORY must be owner/name, got {repo!r}")
    return repo


def _run(command: Sequence[str], stdin: str | None = None) -> str:
    result = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CommentError(f"{command[0]} {command[1]} failed: {result.stderr.strip()}")
    return result.stdout


def _gh_api(method: str, path: str, payload: Mapping[str, object] | None = None) -> str:
    command = ["gh", "api", "--method", method, path]
    if payload is None:
        return _run(command)
    return _run([*command, "--input", "-"], stdin=json.dumps(payload))


def sticky_comment_gh(repo: str, number: int, body: str, watermark: str) -> str:
    """Create or update the comment carrying ``watermark`` through the REST API."""
    marker = f"<!-- {watermark} -->"
    listed = _run(
        [
            "gh",
            "api",
            "--paginate",
            f"repos/{repo}/issues/{number}/comments",
            "--jq",
            f'.[] | select(.body | contains("{marker}")) | .id',
        ]
    )
    ids = listed.split()
    text = f"{marker}\n{body}"
    if ids:
        _gh_api("PATCH", f"repos/{repo}/issues/comments/{ids[-1]}", {"body": text})
        return f"updated comment {ids[-1]} on #{number}"
    _gh_api("POST", f"repos/{repo}/issues/{number}/comments", {"body": text})
    return f"created a comment on #{number}"


def sticky_comment_cml(number: int, path: Path, watermark: str) -> str:
    """``cml comment update`` on the pull request, images left where they are."""
    output = _run(
        [
            "cml",
            "comment",
            "update",
            f"--target=pr/{number}",
            f"--watermark-title={watermark}",
            "--publish=false",
            str(path),
        ]
    )
    return f"cml: {output.strip() or 'comment updated'} on #{number}"


def open_pr_url(repo: str, head: str) -> str | None:
    """The URL of the open PR from branch ``head``, if there is one."""
    listed = _run(
        ["gh", "pr", "list", "--repo", repo, "--head", head, "--state", "open", "--json", "url"]
    )
    open_prs = json.loads(listed or "[]")
    return str(open_prs[0]["url"]) if open_prs else None


def open_pr(repo: str, head: str, base: str, title: str, body_path: Path) -> str:
    """Open a PR from ``head`` unless one is open already (idempotent)."""
    existing = open_pr_url(repo, head)
    if existing:
        return f"a pull request is already open for {head}: {existing}"
    url = _run(
        [
            "gh",
            "pr",
            "create",
            "--repo",
            repo,
            "--head",
            head,
            "--base",
            base,
            "--title",
            title,
            "--body-file",
            str(body_path),
        ]
    )
    return f"opened {url.strip()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Post the comment or open the PR; exit 1 with the reason when that fails."""
    parser = argparse.ArgumentParser(prog="python -m scripts.comment", description=__doc__)
    parser.add_argument(
        "--backend",
        choices=("auto", "cml", "gh"),
        default=os.environ.get("GITOPS_ML_COMMENTER", "auto"),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sticky = commands.add_parser("pr", help="post FILE as the PR's sticky comment")
    sticky.add_argument("file", type=Path)
    sticky.add_argument("--pr", type=int, default=None, help="default: from the event payload")
    sticky.add_argument("--watermark", default=DEFAULT_WATERMARK)
    opener = commands.add_parser("open-pr", help="open a PR from a pushed branch (once)")
    opener.add_argument("--head", required=True)
    opener.add_argument("--base", default="main")
    opener.add_argument("--title", required=True)
    opener.add_argument("--body-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "open-pr":
            choose_backend("gh")
            print(open_pr(repository(os.environ), args.head, args.base, args.title, args.body_file))
            return 0
        body = args.file.read_text(encoding="utf-8")
        backend = choose_backend(args.backend)
        number = pr_number(args.pr, os.environ)
        if backend == "cml":
            print(sticky_comment_cml(number, args.file, args.watermark))
        else:
            print(sticky_comment_gh(repository(os.environ), number, body, args.watermark))
    except (CommentError, OSError, json.JSONDecodeError) as error:
        print(f"comment: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
