"""Propose a change of tracked files as a git commit: ``python -m scripts.gitops propose``.

Used for the deployment state (releases, promotions) and for retraining data
(``monitoring.retrain``). ``propose --title T --body-file F --branch B PATH...`` commits the
changed files and either opens a pull request from branch ``B`` (the default: reviewable,
protected main; ``--auto-merge``: merged once its required checks pass) or, with ``--direct``
(``GITOPS_ML_STATE_PUSH=direct``), pushes the commit to ``main``, falling back to an
auto-merged PR where protection refuses the push (:func:`scripts.ci.github.propose`).
Nothing changed: nothing is committed, exit 0; an open PR already holding the change gets
no new commit.

``commit --branch B [--report F] PATH...`` commits changed files to a PR's own branch
(train.yml's lock, :func:`scripts.ci.github.commit_to_branch`), noting it in the report F.
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
    GitHubContext,
    GitHubError,
    commit_to_branch,
    open_pr_from_prefix,
    propose,
    repository,
    save_release_states,
)


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
    commit = commands.add_parser("commit", help="commit files to a PR's own branch")
    commit.add_argument("paths", type=Path, nargs="+")
    commit.add_argument("--branch", required=True)
    commit.add_argument("--what", default="dvc.lock and the metrics")
    commit.add_argument("--report", type=Path, default=None, help="PR report to append to")
    args = parser.parse_args(argv)
    if args.command == "commit":
        return commit_files(args.paths, args.branch, args.what, args.report)
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


def commit_files(paths: list[Path], branch: str, what: str, report: Path | None) -> int:
    """The ``commit`` subcommand: exit 1 with the reason when it cannot commit."""
    try:
        sentence, _ = commit_to_branch(paths, branch, what)
    except (GitHubError, OSError) as error:
        print(f"gitops: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    print(f"gitops: {sentence}")
    if report is not None and report.is_file():
        with report.open("a", encoding="utf-8") as handle:
            handle.write(f"\n**dvc.lock:** {sentence}\n")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
