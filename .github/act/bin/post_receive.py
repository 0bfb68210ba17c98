#!/usr/bin/env python3
"""The sandbox origin's post-receive hook: which token made each push (GitHub's event rules).

git runs it in the pushing process's environment, so the token the pusher held is known:
the workflow's ``GITHUB_TOKEN`` (``$GITOPS_ML_WORKFLOW_TOKEN``), whose pushes start no
workflow; a fork's read-only token; another token (a GitHub App's, a PAT); or none (a person
pushing from a laptop). Each updated ref is appended to ``<sandbox>/record/pushes.jsonl``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from github_standin import token_kind  # this folder is on sys.path: the hook runs the file


def kind() -> str:
    """Who pushed, by the token in the environment (no token: a person at a laptop)."""
    token = token_kind()
    return "person" if token == "none" else token


def main() -> None:
    """Record every ref update read from stdin (``old new ref`` per line)."""
    record = Path(os.environ.get("GIT_DIR", ".")).resolve().parent / "record"
    record.mkdir(exist_ok=True)
    by = kind()
    with (record / "pushes.jsonl").open("a", encoding="utf-8") as log:
        for line in sys.stdin:
            old, new, ref = line.split()
            log.write(json.dumps({"ref": ref, "before": old, "after": new, "by": by}) + "\n")


if __name__ == "__main__":
    main()
