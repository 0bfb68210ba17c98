"""Open a retraining PR from a drift report: ``python -m monitoring.retrain`` (``make retrain-pr``).

When the drift job (``monitoring.drift``) found drift and the window has labelled rows
(``reports/drift/labelled.parquet``, at least ``monitoring.min_labelled``):

1. branch ``retrain/<window>`` from the current commit — unless main's model is younger
   than ``monitoring.retraining.min_model_age_hours`` (it has barely met the new traffic), or
   a retraining PR (any ``retrain/*`` branch) is open already: at most one at a time, the
   next window waits;
2. the labelled rows become a new DVC-tracked file of ``data.windows_dir`` (``dvc add``,
   ``dvc push``), which the ingest stage appends to the training data;
3. commit the ``.dvc`` file, push the branch, open the PR with the drift summary as its body,
   through ``scripts.comment`` (the CML/gh wrapper).

The PR then runs ``train.yml`` like any other — report, gates, merge, release, A/B — only if
it was opened with a token that triggers workflows: GitHub's default ``GITHUB_TOKEN`` does
not. Exit 0 when a PR was opened or none was warranted (said why), 1 on failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.exit_codes import ExitCode
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, load_params
from scripts.ci.github import (
    GitHubContext,
    GitHubError,
    git,
    open_pr_from_prefix,
    propose,
    repository,
)


def token_note(context: GitHubContext) -> str | None:
    """A warning when the PR will not trigger workflows (opened with GITHUB_TOKEN)."""
    if context.triggers_workflows:
        return None
    return (
        "warning: no GITOPS_APP_ID/GITOPS_APP_KEY (GitHub App) or RETRAIN_TOKEN (PAT) is "
        "configured: the PR is opened with GITHUB_TOKEN, and GitHub runs no workflow on it "
        "(train.yml will not report). Configure one of them (README, Adopting it on GitHub)."
    )


def model_age_hours(lock: Path = Path("dvc.lock"), now: float | None = None) -> float | None:
    """Hours since the commit that brought this checkout's model into ``dvc.lock``.

    The model is the export stage's ONNX file (its digest is the model version); the
    oldest commit whose ``dvc.lock`` change adds that digest is when main got the model.
    None when git cannot tell (no history, or the lock is not committed).
    """
    import time

    import yaml

    try:
        stages = yaml.safe_load(lock.read_text(encoding="utf-8"))["stages"]
        digest = next(
            out["md5"] for out in stages["export"]["outs"] if out["path"].endswith(".onnx")
        )
    except (OSError, KeyError, StopIteration, TypeError):
        return None
    found = subprocess.run(
        ["git", "log", "--format=%ct", "-S", digest, "--", str(lock)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not found:
        return None
    return ((now or time.time()) - int(found[-1])) / 3600


def main(argv: Sequence[str] | None = None) -> int:
    """Open the PR when warranted; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.retrain", description=__doc__)
    parser.add_argument("--drift-dir", type=Path, default=Path("reports/drift"))
    parser.add_argument("--window", required=True, help="window name, e.g. 2026-11-29")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--base", default="main")
    args = parser.parse_args(argv)
    # A retraining change is always reviewed: a PR, never a direct push.
    context = dataclasses.replace(GitHubContext.from_env(), state_push="pr")
    try:
        params = load_params(args.params)
        summary = json.loads((args.drift_dir / "summary.json").read_text(encoding="utf-8"))
        if not summary["drift"]:
            print("retrain: no drift in the window: no PR")
            return ExitCode.OK
        labelled_path = args.drift_dir / "labelled.parquet"
        labelled = pd.read_parquet(labelled_path) if labelled_path.is_file() else pd.DataFrame()
        minimum = params.monitoring.min_labelled
        if len(labelled) < minimum:
            print(
                f"retrain: drift ({', '.join(summary['reasons'])}) but {len(labelled)} labelled "
                f"rows (< monitoring.min_labelled={minimum}): no training data to add, no PR"
            )
            return ExitCode.OK
        age, youngest = model_age_hours(), params.monitoring.retraining.min_model_age_hours
        if age is not None and age < youngest:
            print(
                f"retrain: main's model is {age:.1f} h old (< monitoring.retraining."
                f"min_model_age_hours={youngest:g}): it has barely met this traffic, no PR"
            )
            return ExitCode.OK
        repo = repository(context)
        branch = f"retrain/{args.window}"
        already = open_pr_from_prefix(repo, "retrain/")
        if already:
            print(f"retrain: a retraining PR is already open ({already}): no second one")
            return ExitCode.OK
        note = token_note(context)
        if note:
            print(f"retrain: {note}")
        git("checkout", "-q", "-B", branch)
        target = params.data.windows_dir / f"{args.window}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        labelled.to_parquet(target, index=False)
        for command in (["dvc", "add", str(target)], ["dvc", "push", f"{target}.dvc"]):
            subprocess.run(command, check=True, capture_output=True, text=True)
        title = f"Retrain on the drifted window {args.window} ({len(labelled)} labelled rows)"
        body = args.drift_dir / "pr_body.md"
        body.write_text(
            (args.drift_dir / "summary.md").read_text(encoding="utf-8")
            + f"\nThis PR adds `{target}` ({len(labelled)} labelled rows, DVC-tracked) to the "
            "training data; train.yml reports the retrained model against main.\n",
            encoding="utf-8",
        )
        tracked = [Path(f"{target}.dvc"), target.parent / ".gitignore"]
        print(f"retrain: {propose(tracked, title, body, branch, context, base=args.base)}")
    except (GitHubError, ParamsError, OSError, KeyError, json.JSONDecodeError) as error:
        print(f"retrain: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    except subprocess.CalledProcessError as error:
        print(f"retrain: {' '.join(error.cmd)} failed: {error.stderr}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
