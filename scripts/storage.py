"""The DVC storage of CI jobs: ``python -m scripts.storage check|pr-remote|repro``.

``check`` is called first by ``make repro`` and ``make drift``. On GitHub Actions
(``GITHUB_ACTIONS=true``) a default remote inside the checkout, or none, fails the job at
once with how to configure shared storage (:mod:`scripts.ci.storage`); elsewhere (a laptop)
the same finding is a note.

``pr-remote`` configures the pull request remote ``pr`` (the default remote + ``/pr``, in
``.dvc/config.local``) and turns on hash verification of both (docs/storage-trust.md).
``repro --pull-from pr`` is ``dvc repro --pull`` reading that remote instead of the default:
``make ci-repro`` and ``make sync-lock`` restore a pull request's results with it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.storage import (
    PR_REMOTE,
    configure_pr_remote,
    default_remote,
    reproduce,
    storage_problem,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``check``: exit 1 on GitHub when the remote cannot carry data between jobs.

    ``pr-remote`` and ``repro``: exit 1 when there is no default remote to derive ``pr``
    from, or when the reproduction failed.
    """
    parser = argparse.ArgumentParser(prog="python -m scripts.storage", description=__doc__)
    checkout = argparse.ArgumentParser(add_help=False)
    checkout.add_argument("--root", type=Path, default=Path.cwd())
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "check", parents=[checkout], help="is the default DVC remote shared storage?"
    )
    commands.add_parser(
        "pr-remote", parents=[checkout], help="configure the pull request remote `pr` (local)"
    )
    repro = commands.add_parser(
        "repro", parents=[checkout], help="dvc repro --pull from another remote"
    )
    repro.add_argument("--pull-from", default=PR_REMOTE, metavar="REMOTE")
    args = parser.parse_args(argv)
    if args.command == "pr-remote":
        return pr_remote(args.root)
    if args.command == "repro":
        return repro_from(args.root, args.pull_from)
    return check_storage(args.root)


def check_storage(root: Path) -> int:
    """Exit 1 on GitHub when the remote cannot carry data between jobs; else 0."""
    remote = default_remote(root)
    problem = storage_problem(root, remote)
    if problem is None:
        print(f"storage: DVC remote {remote.name!r} at {remote.url}")
        return ExitCode.OK
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error title=DVC storage::{problem}")
        return ExitCode.FOUND_PROBLEM
    print(f"storage: note (fine on this machine, not on GitHub): {problem}")
    return ExitCode.OK


def pr_remote(root: Path) -> int:
    """Configure ``pr``; say where it is."""
    try:
        remote = configure_pr_remote(root)
    except ValueError as error:
        print(f"storage: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    print(
        f"storage: DVC remote {PR_REMOTE!r} at {remote.url} (.dvc/config.local), "
        f"beside {remote.default!r} at {remote.default_url}; both verify what they give"
    )
    return ExitCode.OK


def repro_from(root: Path, remote: str) -> int:
    """``dvc repro --pull`` from ``remote``; 1 when it fails, with DVC's message."""
    from dvc.exceptions import DvcException

    try:
        reproduce(root, remote)
    except DvcException as error:
        print(f"storage: dvc repro --pull from {remote!r} failed: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
