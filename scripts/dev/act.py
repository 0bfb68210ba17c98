"""Run the real workflow files locally with nektos/act, in host mode, in a sandbox clone.

``python -m scripts.dev.act EVENT [--workflow FILE]... [--expect JOB]...`` (``make act-pr``,
``make act-main``, ``make act-schedule``): a fresh sandbox (:mod:`scripts.dev.harness`) whose
DVC remote is a bucket of a real S3 endpoint on loopback, a baseline model trained on main,
then each workflow the event triggers run with GitHub's rules around it (docs/harness.md).
``--adopted`` configures the sandbox as a team's repository (branch protection, environments
with reviewers and secrets, auto-merge). Exit 0 when every expected job ran and passed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.runs import RULES
from scripts.dev.harness.sandbox import adopt, create_sandbox
from scripts.dev.harness.workflows import EVENT_TRIGGERS, workflows_for
from scripts.dev.s3 import S3Endpoint, S3ServerError, s3_server


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workflows an event triggers in a fresh sandbox; exit 1 unless all ran green."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.act", description=__doc__)
    parser.add_argument("event", choices=sorted(EVENT_TRIGGERS))
    parser.add_argument("--workflow", action="append", help="file name (default: all triggered)")
    parser.add_argument("--expect", action="append", help="job ids expected to run (default: all)")
    parser.add_argument("--job", default=None, help="run only this job id")
    parser.add_argument("--var", action="append", default=[], help="repository variable k=v")
    parser.add_argument("--sandbox", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox afterwards")
    parser.add_argument(
        "--relax",
        action="append",
        default=[],
        choices=sorted(RULES),
        help="turn one of GitHub's rules off (default: every rule on, as on GitHub)",
    )
    parser.add_argument(
        "--no-app",
        action="store_true",
        help="no GitHub App configured (GITOPS_APP_ID/GITOPS_APP_KEY): GITHUB_TOKEN only",
    )
    parser.add_argument(
        "--allow-actions-prs",
        action="store_true",
        help="the repository setting 'Allow GitHub Actions to create pull requests' (off)",
    )
    parser.add_argument(
        "--adopted",
        action="store_true",
        help="a team's repository: ruleset on main, environments with reviewers and secrets",
    )
    parser.add_argument(
        "--bypass-app", action="store_true", help="with --adopted: the App bypasses the ruleset"
    )
    parser.add_argument(
        "--approve",
        action="append",
        default=[],
        help="with --adopted: a reviewer approves this environment for the runs (repeatable)",
    )
    args = parser.parse_args(argv)
    root = args.sandbox or Path(tempfile.mkdtemp(prefix="gitops-ml-act-"))
    storage = contextlib.ExitStack()
    try:
        try:
            endpoint: S3Endpoint | None = storage.enter_context(s3_server())
        except S3ServerError as error:
            print(f"act: DVC storage in a local folder ({error})")
            endpoint = None
        sandbox = create_sandbox(root, s3=endpoint)
        for rule in args.relax:
            sandbox.relax(rule, "--relax on the command line")
        sandbox.settings["actions_can_create_pull_requests"] = args.allow_actions_prs
        if not args.no_app:  # configured as README's adoption section says
            sandbox.variables["GITOPS_APP_ID"] = "424242"
            sandbox.secrets["GITOPS_APP_KEY"] = "(act sandbox: a stand-in key)"
        before = sandbox.baseline()
        if args.event == "pull_request":
            sandbox.git("checkout", "-q", "-b", "act/pull-request")
            sandbox.git("commit", "-q", "--allow-empty", "-m", "act: pull request head")
            sandbox.push("act/pull-request")
        names = args.workflow or [path.name for path in workflows_for(sandbox.work, args.event)]
        if not names:
            raise ActError(f"no workflow in .github/workflows is triggered by {args.event}")
        variables = dict(item.split("=", 1) for item in args.var)
        payload: dict[str, Any] = {"before": before} if args.event == "push" else {}
        if args.event == "schedule" and not os.environ.get("DRIFT_WINDOW"):
            # No production logs in a fresh sandbox: the drift job judges a generated window
            # of young clients (covariate drift) instead.
            from pipeline.generate import Window, write_dataset

            window = root / "drift-window.parquet"
            write_dataset(window, 1000, 5, Window(drift="covariate"))
            sandbox.job_env["DRIFT_WINDOW"] = str(window)
        if args.event == "push":
            sandbox.git("commit", "-q", "--allow-empty", "-m", "act: push to main")
            sandbox.push("main")
        if args.adopted:  # after the pushes a person made to set the scene
            adopt(sandbox, bypass=("app",) if args.bypass_app else ())
        runs = []
        for name in names:
            sandbox.approved.update(args.approve)  # a reviewer's approval holds for one run
            runs.append(
                sandbox.act(args.event, name, args.expect, variables, job=args.job, **payload)
            )
    except (ActError, subprocess.CalledProcessError, OSError) as error:
        print(f"act: {error}", file=sys.stderr)
        storage.close()
        return 1
    if sandbox.relaxed:
        print(f"act: rules relaxed: {', '.join(sorted(sandbox.relaxed))}")
    for run in runs:
        print(run.summary())
        for job, pids in run.cleaned.items():
            print(f"  runner cleanup at the end of {job}: terminated {len(pids)} process(es)")
        if not run.ok:
            failed = [job for job, result in run.jobs.items() if result != "success"]
            for job in failed:
                print(f"--- {run.workflow}/{job} (last lines) ---\n{run.output(job)[-3000:]}")
            if run.missing:
                print(
                    f"act: expected jobs did not run: {', '.join(run.missing)} (act skips jobs "
                    "whose runs-on label has no -P mapping, and jobs whose needs failed)"
                )
    if args.keep:
        print(f"act: sandbox kept in {root}; deployments keep running under {sandbox.run_dir}")
        print(
            f"     stop them with: GITOPS_ML_RUN_DIR={sandbox.run_dir} make undeploy DEPLOY_ENV=…"
        )
    else:
        stopped = sandbox.stop_deployments()
        if stopped:
            print(f"act: stopped the deployments the run started ({', '.join(stopped)})")
        if all(run.ok for run in runs):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"act: logs kept in {root / 'logs'}")
    storage.close()
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
