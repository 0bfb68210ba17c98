"""Propose a change of tracked files as a git commit: ``python -m scripts.gitops``.

Used for the deployment state (releases, promotions) and for retraining data
(``monitoring.retrain``).


``propose --title T --body-file F --branch B PATH...`` commits the changed state files and
either opens a pull request from branch ``B`` (the default: reviewable, protected main) or,
with ``--direct``, pushes the commit to ``main``. The PR goes through ``scripts.comment``
(the one CML/gh wrapper). Nothing changed: nothing is committed, exit 0.

On GitHub, checkouts keep no credentials (``persist-credentials: false``): with ``GH_TOKEN``
set, ``gh auth setup-git`` lends git the token for this push only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.comment import CommentError, open_pr, repository

BOT = ("gitops-ml-bot", "gitops-ml-bot@users.noreply.github.com")


def git(*args: str) -> str:
    """Run git; its stdout. Raises CommentError with git's message on failure."""
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CommentError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def propose(
    paths: Sequence[Path], title: str, body: Path, branch: str, direct: bool, base: str = "main"
) -> str:
    """Commit ``paths`` and push them to ``base`` or to ``branch`` with a PR; what happened."""
    if not git("status", "--porcelain", "--", *map(str, paths)):
        return f"no change to commit in {', '.join(map(str, paths))}"
    git("add", "--", *map(str, paths))
    git("-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}", "commit", "-q", "-m", title)
    if os.environ.get("GH_TOKEN") and shutil.which("gh"):
        subprocess.run(["gh", "auth", "setup-git"], check=False, capture_output=True)
    if direct:
        git("push", "-q", "origin", f"HEAD:refs/heads/{base}")
        return f"pushed to {base}: {title}"
    git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}")
    return open_pr(repository(os.environ), branch, base, title, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Propose the change; exit 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m scripts.gitops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    proposal = commands.add_parser("propose", help="commit state files; PR or push to main")
    proposal.add_argument("paths", type=Path, nargs="+")
    proposal.add_argument("--title", required=True)
    proposal.add_argument("--body-file", type=Path, required=True)
    proposal.add_argument("--branch", required=True)
    proposal.add_argument(
        "--direct",
        action="store_true",
        default=os.environ.get("GITOPS_ML_STATE_PUSH") == "direct",
        help="push to main instead of opening a PR (GITOPS_ML_STATE_PUSH=direct)",
    )
    args = parser.parse_args(argv)
    try:
        print(
            f"gitops: {propose(args.paths, args.title, args.body_file, args.branch, args.direct)}"
        )
    except (CommentError, OSError) as error:
        print(f"gitops: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
