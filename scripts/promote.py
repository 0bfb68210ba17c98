"""The A/B decision: ``python -m scripts.promote --env production`` (``make promote``).

Reads each variant's figures since the experiment started from Prometheus
(:mod:`scripts.cd.prometheus`), decides with the A/B rule (:mod:`scripts.cd.promotion`),
prints the outcome and writes ``reports/promotion.json``. ``--write`` edits the state file
(promote: the challenger becomes the only variant; rollback: it is removed); ``--propose``
also commits it as a PR, or a push to main with ``GITOPS_ML_STATE_PUSH=direct``
(:mod:`scripts.ci.github`). Exit 0 when a decision (or ``continue``) was reached, 2 when the
experiment could not be evaluated (Prometheus unreachable), 1 when proposing failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.cd.errors import DeliveryError, PrometheusError
from scripts.cd.prometheus import figures
from scripts.cd.promotion import applied, decide_experiment, render_body, report
from scripts.cd.reconcile import render_manifests
from scripts.cd.runtime import DriverSettings, load_running
from scripts.cd.state import STATE_DIR, StateError, load_state, save_state, state_path
from scripts.ci.github import GitHubContext, GitHubError, propose


def main(argv: Sequence[str] | None = None) -> int:
    """Decide, print, write the report; optionally edit the state and propose it."""
    settings = DriverSettings.from_env()
    parser = argparse.ArgumentParser(prog="python -m scripts.promote", description=__doc__)
    parser.add_argument("--env", default="production")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--prometheus-url", default=settings.prometheus_url)
    parser.add_argument("--since", type=float, default=None, help="experiment start (epoch s)")
    parser.add_argument("--out", type=Path, default=Path("reports/promotion.json"))
    parser.add_argument("--write", action="store_true", help="edit the state file")
    parser.add_argument("--propose", action="store_true", help="--write, then commit it as a PR")
    args = parser.parse_args(argv)
    path = state_path(args.env, args.state_dir)
    try:
        state = load_state(path)
    except StateError as error:
        print(f"promote: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    if state.challenger is None or state.champion is None:
        print(f"promote: no experiment in {path}: nothing to decide")
        return ExitCode.OK
    # The experiment's start: the state file (git). Prometheus: PROMETHEUS_URL, or local.
    local = load_running(settings.run_dir(args.env))
    base_url = (args.prometheus_url or (local.prometheus_url if local else "")).rstrip("/")
    started = state.experiment.started_at
    since = args.since or (started.timestamp() if started else None)
    if since is None and local is not None:  # a state written before started_at existed
        since = local.experiment_started
    now = time.time()
    try:
        if not base_url or since is None:
            raise PrometheusError(
                "no Prometheus URL or experiment start: set PROMETHEUS_URL (or deploy with "
                f"the local driver here) and experiment.started_at in {path}"
            )
        measured = figures(base_url, since, now)
    except PrometheusError as error:
        print(f"promote: continue — could not evaluate the experiment: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    decision = decide_experiment(state, measured, (now - since) / 3600)
    outcome = report(state, decision)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(outcome, indent=2), encoding="utf-8")
    print(f"promote: {decision.outcome.upper()} — {decision.reason}")
    for role in ("champion", "challenger"):
        print(f"  {role:<10} {outcome[f'{role}_bento']}: {outcome[role]}")
    if decision.outcome == "continue" or not (args.write or args.propose):
        return ExitCode.OK
    updated = applied(state, decision)
    save_state(updated, path)
    serves = ", ".join(f"{v.name}={v.bento}" for v in updated.variants)
    print(f"promote: {path} now serves {serves}")
    if args.propose:
        body = args.out.with_suffix(".md")
        body.write_text(render_body(outcome), encoding="utf-8")
        challenger = state.challenger.bento
        title = f"{decision.outcome}: {challenger} in {args.env}"
        # One decision PR per environment: a later hour with the same decision edits its
        # body; a different decision replaces its commit.
        branch = f"gitops/{args.env}-decision"
        try:  # the re-rendered manifests go with it (Argo CD / Flux apply them)
            changed = [path, *render_manifests(updated, args.state_dir)]
            context = GitHubContext.from_env()
            print(f"promote: {propose(changed, title, body, branch, context, auto_merge=True)}")
        except (GitHubError, DeliveryError) as error:
            print(f"promote: {error}", file=sys.stderr)
            return ExitCode.FOUND_PROBLEM
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
