"""The actions/checkout stand-in: a fresh clone of the sandbox's origin, as GitHub does per job.

What it fetches follows actions/checkout v4 (``src/ref-helper.ts``, ``src/git-source-provider.ts``):
the ``ref`` input, else ``github.ref``/``github.sha`` of the event — ``refs/pull/N/merge`` for a
pull request, which the harness pushed to origin as GitHub creates it; ``fetch-depth`` 1 by
default (a shallow clone of that one commit), 0 for every branch and tag. The workspace is
emptied first: nothing survives from an earlier job or from the sandbox's working tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def git(*args: str, cwd: Path) -> str:
    """Run git in the workspace; its stdout; exit 1 with git's message on failure."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"::error::checkout: git {' '.join(args)}: {result.stderr.strip()}")
        sys.exit(1)
    return result.stdout.strip()


def event_ref() -> str:
    """What actions/checkout fetches by default for this event."""
    if os.environ.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
        event = json.loads(Path(os.environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
        return f"refs/pull/{event['number']}/merge"
    return os.environ.get("GITHUB_SHA") or os.environ.get("GITHUB_REF", "HEAD")


def main() -> None:
    """Empty the workspace, fetch the ref from origin, check it out."""
    origin = os.environ.get("GITOPS_ML_ORIGIN", "")
    if not origin:
        print("::error::checkout stand-in: GITOPS_ML_ORIGIN (the sandbox's bare origin) unset")
        sys.exit(1)
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
    for entry in workspace.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    ref = os.environ.get("REF") or event_ref()
    depth = int(os.environ.get("DEPTH") or "1")
    git("init", "-q", cwd=workspace)
    git("remote", "add", "origin", f"file://{origin}", cwd=workspace)
    deepen = [] if depth == 0 else [f"--depth={depth}"]
    if depth == 0:
        git("fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=workspace)
    target = ref
    if ref.startswith("refs/"):
        git("fetch", "-q", *deepen, "origin", f"+{ref}:{ref}", cwd=workspace)
    elif len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
        git("fetch", "-q", *deepen, "origin", ref, cwd=workspace)
    else:  # a branch name
        git(
            "fetch",
            "-q",
            *deepen,
            "origin",
            f"+refs/heads/{ref}:refs/remotes/origin/{ref}",
            cwd=workspace,
        )
        target = f"refs/remotes/origin/{ref}"
    git("checkout", "-q", "--detach", target, cwd=workspace)
    sha = git("rev-parse", "HEAD", cwd=workspace)
    print(f"checkout stand-in: {ref} at {sha[:7]} (fetch-depth {depth}) from {origin}")


if __name__ == "__main__":
    main()
