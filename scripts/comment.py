"""Post a PR comment or open a PR: ``python -m scripts.comment pr|open-pr`` (the GitHub client).

* ``pr FILE`` posts FILE as the pull request's ONE sticky comment, updated in place;
* ``open-pr --head BRANCH --title T --body-file F`` opens a PR from a pushed branch unless
  one is open for it already.

``--backend`` (or ``GITOPS_ML_COMMENTER``) chooses ``cml``, ``gh`` or ``auto`` (cml when on
PATH, else gh); see :mod:`scripts.ci.github`. Standard library only: it runs before any
project install.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.github import (
    DEFAULT_WATERMARK,
    GitHubContext,
    GitHubError,
    choose_backend,
    open_pr,
    pr_number,
    repository,
    sticky_comment_cml,
    sticky_comment_gh,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Post the comment or open the PR; exit 1 with the reason when that fails."""
    context = GitHubContext.from_env()
    parser = argparse.ArgumentParser(prog="python -m scripts.comment", description=__doc__)
    parser.add_argument("--backend", choices=("auto", "cml", "gh"), default=context.commenter)
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
            repo = repository(context)
            print(open_pr(repo, args.head, args.base, args.title, args.body_file))
            return ExitCode.OK
        body = args.file.read_text(encoding="utf-8")
        backend = choose_backend(args.backend)
        number = pr_number(args.pr, context)
        if backend == "cml":
            try:
                print(sticky_comment_cml(number, args.file, args.watermark))
                return ExitCode.OK
            except GitHubError as error:
                if args.backend == "cml":
                    raise
                # CML is unmaintained since 2024-10: any failure falls back to gh, which
                # finds the same comment by CML's watermark.
                print(f"comment: cml failed ({error}); posting with gh", file=sys.stderr)
        print(sticky_comment_gh(repository(context), number, body, args.watermark))
    except (GitHubError, OSError, json.JSONDecodeError) as error:
        print(f"comment: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
