"""Propose a change of tracked files as a git commit: ``python -m scripts.gitops propose``.

Used for the deployment state (releases, promotions) and for retraining data
(``monitoring.retrain``). ``propose --title T --body-file F --branch B PATH...`` commits the
changed files and either opens a pull request from branch ``B`` (the default: reviewable,
protected main; ``--auto-merge``: merged once its required checks pass) or, with ``--direct``
(``GITOPS_ML_STATE_PUSH=direct``), pushes the commit to ``main``, falling back to an
auto-merged PR where protection refuses the push (:func:`scripts.ci.github.propose`).
Nothing changed: nothing is committed, exit 0; an open PR already holding the change gets
no new commit.

``lock-changes --report F PATH...`` (train.yml, ``make lock-changes``) says in the report F
whether ``dvc repro`` rewrote the locked PATHs and hands the run's ``lock`` artifact its
paths (step outputs ``changed``, ``paths``). ``lock --run-artifact DIR --branch B --sha S
PATH...`` (lock.yml, main's code, ``make lock-commit``) commits that artifact to the PR's
branch B when its head is still S, refusing any file outside the locked PATHs
(:func:`scripts.ci.github.commit_lock`).
``pending [--prefix gitops/]`` exits 1 while a PR from such a branch is open;
``release-states --env E --out DIR`` writes E's state file of each open release PR to
``DIR/<number>/E.yaml`` (what ``make reconcile`` keeps running while its PR is open).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.github import (
    BranchMoved,
    GitHubContext,
    GitHubError,
    LockRefused,
    commit_lock,
    lock_changes,
    open_pr_from_prefix,
    propose,
    repository,
    save_release_states,
)

WHAT = "dvc.lock and the metrics"


def main(argv: Sequence[str] | None = None) -> int:
    """Propose the change; exit 1 with the reason on failure."""
    context = GitHubContext.from_env()
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
        default=context.direct_push,
        help="push to main instead of opening a PR (GITOPS_ML_STATE_PUSH=direct)",
    )
    proposal.add_argument(
        "--auto-merge",
        action="store_true",
        help="merge the PR once its required checks pass, where the repository allows it",
    )
    pending = commands.add_parser("pending", help="exit 1 while a PR from PREFIX* is open")
    pending.add_argument("--prefix", default="gitops/")
    states = commands.add_parser(
        "release-states", help="write ENV's state file of each open release PR to OUT"
    )
    states.add_argument("--env", required=True)
    states.add_argument("--out", type=Path, required=True)
    changes = commands.add_parser(
        "lock-changes", help="say whether repro rewrote the locked PATHs (train.yml)"
    )
    changes.add_argument("paths", nargs="+")
    changes.add_argument("--report", type=Path, default=None, help="PR report to append to")
    lock = commands.add_parser(
        "lock", help="commit a PR run's lock artifact to its branch (lock.yml, main's code)"
    )
    lock.add_argument("paths", nargs="+", help="the locked paths: nothing else is committed")
    lock.add_argument("--run-artifact", type=Path, required=True)
    lock.add_argument("--branch", required=True)
    lock.add_argument("--sha", required=True, help="the head commit the run trained")
    args = parser.parse_args(argv)
    if args.command == "lock-changes":
        return note_lock_changes(args.paths, args.report, context)
    if args.command == "lock":
        return commit_run_lock(args.run_artifact, args.paths, args.branch, args.sha, context)
    if args.command == "pending":
        return refuse_while_pending(context, args.prefix)
    if args.command == "release-states":
        try:
            written = save_release_states(repository(context), args.env, args.out)
        except GitHubError as error:
            print(f"gitops: cannot list the open release PRs: {error}", file=sys.stderr)
            return ExitCode.NOT_EVALUATED
        print(f"gitops: {written} open release PR(s) with a {args.env} state, in {args.out}")
        return ExitCode.OK
    if args.direct:
        context = dataclasses.replace(context, state_push="direct")
    try:
        outcome = propose(
            args.paths, args.title, args.body_file, args.branch, context, auto_merge=args.auto_merge
        )
        print(f"gitops: {outcome}")
    except (GitHubError, OSError) as error:
        print(f"gitops: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    return ExitCode.OK


def refuse_while_pending(context: GitHubContext, prefix: str) -> int:
    """Exit 1 while a state change (a PR from ``prefix*``) is pending; 2 when unknown."""
    try:
        pending = open_pr_from_prefix(repository(context), prefix)
    except GitHubError as error:
        print(f"gitops: cannot tell whether a state change is pending: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    if pending:
        print(f"gitops: a state change is pending ({pending}): merge or close it, then re-run")
        return ExitCode.FOUND_PROBLEM
    print(f"gitops: no pending state change ({prefix}*)")
    return ExitCode.OK


def note_lock_changes(paths: list[str], report: Path | None, context: GitHubContext) -> int:
    """The ``lock-changes`` subcommand: a line in the report, the step's outputs; exit 0."""
    changed = lock_changes(paths)
    if changed:
        sentence = (
            f"repro changed {WHAT} ({len(changed)} file(s)): they are this run's `lock` "
            "artifact, which lock.yml commits to a branch of this repository (the run for "
            "that commit reproduces nothing); otherwise run `make sync-lock`, commit, push."
        )
    else:
        sentence = f"{WHAT} match this commit: nothing to commit."
    print(f"gitops: {sentence}")
    if report is not None and report.is_file():
        with report.open("a", encoding="utf-8") as handle:
            handle.write(f"\n**dvc.lock:** {sentence}\n")
    if context.output:
        with open(context.output, "a", encoding="utf-8") as handle:
            listed = "\n".join(paths)
            handle.write(f"changed={str(bool(changed)).lower()}\n")
            handle.write(f"paths<<GITOPS_PATHS\n{listed}\nGITOPS_PATHS\n")
    return ExitCode.OK


def commit_run_lock(
    artifact: Path, paths: list[str], branch: str, sha: str, context: GitHubContext
) -> int:
    """The ``lock`` subcommand: exit 1 when it refuses or cannot commit, 0 otherwise.

    A branch that moved past ``sha`` is no failure: the newer push's own run locks it.
    """
    code = ExitCode.OK
    try:
        sentence, _ = commit_lock(artifact, paths, branch, sha, WHAT)
    except BranchMoved as moved:
        sentence = f"not committing: {moved}"
    except LockRefused as refused:
        sentence, code = f"refusing the run's lock artifact: {refused}", ExitCode.FOUND_PROBLEM
    except (GitHubError, OSError) as error:
        sentence, code = str(error), ExitCode.FOUND_PROBLEM
    print(f"gitops: {sentence}", file=sys.stderr if code else sys.stdout)
    if context.step_summary:
        with open(context.step_summary, "a", encoding="utf-8") as handle:
            handle.write(f"**dvc.lock:** {sentence}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
