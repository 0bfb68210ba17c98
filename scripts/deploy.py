"""Reconcile an environment to its state file: ``python -m scripts.deploy COMMAND --env ENV``.

The desired state is ``bentos/deployments/<env>.yaml`` (:mod:`scripts.cd.state`); the
environment's driver makes the running system match it (:mod:`scripts.cd.reconcile`).

Commands:

* ``release --bento-file F``: import the Bento archive, update the state file as the
  environment's ``on_release`` says (replace, or add as challenger), then ``apply``;
* ``record --bento-file F``: only the state-file edit of ``release`` (no deployment);
* ``push --bento-file F``: keep the archive in the shared storage (:mod:`scripts.cd.archive`);
* ``changed``: whether this checkout's model and serving code differ from every variant
  of the environment (``release=true|false`` in ``$GITHUB_OUTPUT``);
* ``apply``: start and check new variants, shift traffic, stop the old ones;
* ``reconcile``: compare git's state with what runs, repair it (the supervisor too), remove
  what git no longer names, and say what it found and did (job summary too); exit 1 when
  the environment is still unhealthy;
* ``status`` (exit 1 when something is down), ``down``;
* ``url [--service router|prometheus|pushgateway|alertmanager]``.

Exits 1 with a one-line ``deploy: ...`` reason when the deployment fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.cd import archive, guard, local_driver
from scripts.cd.bento_store import DIGEST_LABEL, archive_labels, bento_tag, content_digest
from scripts.cd.errors import DeliveryError, DeployError
from scripts.cd.reconcile import (
    reconcile,
    record,
    release,
    release_needed,
    self_heal,
    summary,
)
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import STATE_DIR, DeploymentState, StateError, load_state, state_path


def run(args: argparse.Namespace, settings: DriverSettings) -> int:
    """Carry out one parsed command."""
    refused = guard.refusal(args.command, args.env, os.environ)
    if refused:
        raise DeployError(refused)
    if args.command in ("release", "record", "push") and not str(args.bento_file or "").strip():
        raise DeployError(f"{args.command} needs --bento-file (make bento writes dist/*.bento)")
    if args.command == "release":
        release(settings, args.env, args.bento_file, args.state_dir)
    elif args.command == "record":
        state = load_state(state_path(args.env, args.state_dir))
        digest = archive_labels(args.bento_file).get(DIGEST_LABEL)
        record(state, bento_tag(args.bento_file), args.state_dir, digest)
    elif args.command == "changed":
        release_needed(load_state(state_path(args.env, args.state_dir)), content_digest())
    elif args.command == "push":
        tag = bento_tag(args.bento_file)
        print(f"deploy: {tag} kept at {archive.push(args.bento_file, tag)}")
    elif args.command == "apply":
        reconcile(settings, load_state(state_path(args.env, args.state_dir)), args.state_dir)
    elif args.command == "reconcile":
        return heal(settings, args.env, args.state_dir, args.pending)
    elif args.command == "down":
        local_driver.down(settings, args.env)
    elif args.command == "status":
        report = local_driver.status(settings, args.env)
        print(json.dumps(report, indent=2))
        return ExitCode.OK if report["healthy"] else ExitCode.FOUND_PROBLEM
    elif args.service == "router" and args.env in settings.urls:
        print(settings.urls[args.env])  # served elsewhere: a gateway (kubernetes driver)
    else:
        if load_state(state_path(args.env, args.state_dir)).driver == "kubernetes":
            key = f"GITOPS_ML_{args.env.upper()}_URL"
            raise DeployError(f"{args.env} is served by Kubernetes: set {key} to its gateway URL")
        running = local_driver.running_or_fail(settings, args.env)
        urls = {
            "router": running.url,
            "prometheus": running.prometheus_url,
            "pushgateway": running.pushgateway_url if running.pushgateway_port else "",
            "alertmanager": running.alertmanager_url if running.alertmanager_port else "",
        }
        if not urls[args.service]:
            raise DeployError(f"{args.env} runs no {args.service} (deployed before it had one)")
        print(urls[args.service])
    return ExitCode.OK


def pending_states(directory: Path | None, env: str) -> list[DeploymentState] | None:
    """The states of ``env`` on open release PRs, as ``gitops release-states`` wrote them.

    No directory (a laptop): none. A directory without its ``complete`` marker (GitHub
    could not be asked): unknown, ``None``.
    """
    if directory is None:
        return []
    if not (directory / "complete").is_file():
        print(f"deploy: {directory}: no complete list of open release PRs")
        return None
    return [load_state(path) for path in sorted(directory.glob(f"*/{env}.yaml"))]


def heal(settings: DriverSettings, env: str, state_dir: Path, pending: Path | None) -> int:
    """The ``reconcile`` command: repair, then report (stdout and the job summary)."""
    state = load_state(state_path(env, state_dir))
    found, did = self_heal(settings, state, state_dir, pending_states(pending, env))
    healthy = (
        state.driver == "kubernetes"
        or state.champion is None  # nothing released yet: nothing should run
        or bool(local_driver.status(settings, env)["healthy"])
    )
    text = summary(env, found, did, healthy)
    print(text, end="")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(text)
    return ExitCode.OK if healthy else ExitCode.FOUND_PROBLEM


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__)
    parser.add_argument(
        "command",
        choices=(
            "release",
            "record",
            "push",
            "changed",
            "apply",
            "reconcile",
            "status",
            "url",
            "down",
        ),
    )
    parser.add_argument("--env", required=True, help="staging, production, ...")
    parser.add_argument("--bento-file", type=Path, help="the Bento archive (release)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument(
        "--service",
        choices=("router", "prometheus", "pushgateway", "alertmanager"),
        default="router",
    )
    parser.add_argument(
        "--pending",
        type=Path,
        default=None,
        help="reconcile: the open release PRs' states (python -m scripts.gitops release-states)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args, DriverSettings.from_env())
    except (
        DeliveryError,
        StateError,
        OSError,
        ValueError,
        subprocess.CalledProcessError,
    ) as error:
        print(f"deploy: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
