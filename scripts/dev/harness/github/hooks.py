"""The sandbox origin's hooks: who made each push, and branch protection.

git runs a hook in the pushing process's environment, so the token the pusher held is known
(:func:`~scripts.dev.harness.github.tokens.token_kind`; no token: a person at a laptop).

* ``pre-receive`` refuses a push the token may not make (a workflow token without
  ``contents: write``, a fork's read-only one: GitHub's 403), and an update of a protected
  branch as GitHub does (a ruleset's GH013, classic protection's GH006) unless the pusher
  is a ruleset's bypass actor or the required checks passed on the pushed commit — for a
  pull request's merge (the harness sets ``GITOPS_ML_MERGE_OF`` to the PR's head), on
  that head;
* ``post-receive`` appends every accepted update, with who made it, to the record.

Installed by :func:`scripts.dev.harness.sandbox.install_hooks`: shell scripts running
this module with the harness's interpreter.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.dev.harness.github.state import Protection, Record
from scripts.dev.harness.github.tokens import REPOSITORY, allowed, caller_kind

PASSED = {"success", "skipped"}


def pusher() -> str:
    """Who pushes, by the token in the environment (no token: a person at a laptop)."""
    kind = caller_kind()
    return "person" if kind == "none" else kind


def refusal(rule: Protection, branch: str, by: str, checks: dict[str, str]) -> str | None:
    """GitHub's refusal of a push to a protected ``branch``, or None when it is allowed.

    A ruleset lets its bypass actors push anyway and refuses others with GH013; classic
    branch protection lets no actor skip its required checks and refuses with GH006
    (GitHub docs, "About rulesets", "About protected branches").

    Args:
        rule: The branch's protection.
        branch: The branch pushed.
        by: Who pushes (:func:`pusher`).
        checks: The checks recorded on the commit that must carry them.
    """
    if rule.ruleset and by in rule.bypass:
        return None
    missing = [name for name in rule.required_checks if checks.get(name) not in PASSED]
    if not missing:
        return None
    if len(missing) == 1:
        detail = f'- Required status check "{missing[0]}" is expected.'
    else:
        detail = (
            f"- {len(missing)} of {len(rule.required_checks)} required status checks are expected."
        )
    if rule.ruleset:
        return f"GH013: Repository rule violations found for refs/heads/{branch}.\n{detail}"
    return f"GH006: Protected branch update failed for refs/heads/{branch}.\n{detail}"


def permission_refusal(record: Record, by: str) -> str | None:
    """GitHub's 403 for a push the token may not make (a job without ``contents: write``)."""
    if by not in ("workflow", "read-only"):
        return None
    if allowed(by, "contents", "write", record.caller_scopes(by)):
        return None
    return f"Permission to {REPOSITORY}.git denied to github-actions[bot]."


def record_of(git_dir: Path) -> Record:
    """The sandbox's record, beside its bare origin."""
    return Record(git_dir.resolve().parent / "record")


def pre_receive(lines: list[str], record: Record) -> int:
    """Refuse (exit 1, GitHub's message) any update of a protected branch GitHub would."""
    by = pusher()
    denied = permission_refusal(record, by)
    if denied:
        print(denied, file=sys.stderr)
        return 1
    for line in lines:
        _, new, ref = line.split()
        branch = ref.removeprefix("refs/heads/")
        rule = record.protection(branch) if ref.startswith("refs/heads/") else None
        if rule is None:
            continue
        sha = os.environ.get("GITOPS_ML_MERGE_OF") or new
        message = refusal(rule, branch, by, record.checks(sha))
        if message:
            print(f"error: {message}", file=sys.stderr)  # git prefixes "remote: "
            return 1
    return 0


def post_receive(lines: list[str], record: Record) -> int:
    """Record every ref update (``old new ref`` per line) with who made it."""
    by = pusher()
    for line in lines:
        old, new, ref = line.split()
        record.log_push(ref, old, new, by)
    return 0


def main() -> int:
    """Run the hook named by the first argument on the updates read from stdin."""
    record = record_of(Path(os.environ.get("GIT_DIR", ".")))
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    return (
        pre_receive(lines, record) if sys.argv[1] == "pre-receive" else post_receive(lines, record)
    )


if __name__ == "__main__":
    sys.exit(main())
