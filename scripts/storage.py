"""Check the DVC storage before a CI job relies on it: ``python -m scripts.storage check``.

Called first by ``make repro`` and ``make drift``. On GitHub Actions (``GITHUB_ACTIONS=true``)
a default remote inside the checkout, or none, fails the job at once with how to configure
shared storage (:mod:`scripts.ci.storage`); elsewhere (a laptop) the same finding is a note.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.storage import default_remote, storage_problem


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 1 on GitHub when the remote cannot carry data between jobs; else 0."""
    parser = argparse.ArgumentParser(prog="python -m scripts.storage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="is the default DVC remote shared storage?")
    check.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    remote = default_remote(args.root)
    problem = storage_problem(args.root, remote)
    if problem is None:
        print(f"storage: DVC remote {remote.name!r} at {remote.url}")
        return ExitCode.OK
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error title=DVC storage::{problem}")
        return ExitCode.FOUND_PROBLEM
    print(f"storage: note (fine on this machine, not on GitHub): {problem}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
