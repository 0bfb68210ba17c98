"""Release = record the Bento in the state file, then reconcile with the environment's driver.

The state file (:mod:`scripts.cd.state`) is the desired state; the ``local`` driver
(:mod:`scripts.cd.local_driver`) or the ``kubernetes`` driver (:mod:`scripts.cd.kubernetes`)
makes the running system match it. :func:`self_heal` is ``make reconcile``: what git says
against what runs, repaired, on a schedule (deploy.yml), like Argo CD's self-heal.
"""

from __future__ import annotations

import os
from pathlib import Path

from scripts.cd import kubernetes, local_driver
from scripts.cd.bento_store import DIGEST_LABEL, archive_labels, bento_tag, import_bento
from scripts.cd.errors import DeployError
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import (
    DeploymentState,
    load_state,
    released,
    save_state,
    serving,
    state_path,
)


def record(
    state: DeploymentState, tag: str, state_dir: Path, digest: str | None = None
) -> DeploymentState:
    """Write what a release of ``tag`` (serving content ``digest``) does to the state file."""
    path = state_path(state.environment, state_dir)
    updated = released(state, tag, digest=digest)
    if updated == state:
        print(f"deploy: {path}: {tag} changes nothing here (already served)")
    else:
        save_state(updated, path)
        variants = ", ".join(f"{v.name}={v.bento} ({v.weight}%)" for v in updated.variants)
        print(f"deploy: {path}: {variants}")
    return updated


def render_manifests(state: DeploymentState, state_dir: Path) -> list[Path]:
    """(Re)write the environment's Kubernetes manifests from ``state``; the files.

    Raises:
        DeployError: Naming the problems when a manifest is invalid.
    """
    directory = state_dir / "k8s" / state.environment
    paths, problems = kubernetes.render_environment(
        state, directory, kubernetes.image_repository(), "gitops-ml", "gitops-ml-gateway"
    )
    if problems:
        raise DeployError(f"{state.environment} manifests invalid: " + "; ".join(problems))
    return paths


def reconcile(settings: DriverSettings, state: DeploymentState, state_dir: Path) -> None:
    """Apply the state with its driver (kubernetes: manifests rendered first, then applied)."""
    if state.driver == "kubernetes":
        render_manifests(state, state_dir)
        kubernetes.apply(state_dir / "k8s" / state.environment, settings)
    else:
        local_driver.apply(settings, state)


def release(settings: DriverSettings, env: str, archive: Path, state_dir: Path) -> None:
    """Import the archive, record it in the state file as ``on_release`` says, apply."""
    state = load_state(state_path(env, state_dir))
    if state.driver == "local":
        tag = import_bento(local_driver.store(settings, env), archive)
    else:
        tag = bento_tag(archive)
    digest = archive_labels(archive).get(DIGEST_LABEL)
    reconcile(settings, record(state, tag, state_dir, digest), state_dir)


def release_needed(state: DeploymentState, digest: str) -> bool:
    """Whether content ``digest`` is new to ``state``; says why, and sets ``release=``.

    ``release=true|false`` and ``digest=`` go to ``$GITHUB_OUTPUT`` when in a workflow.
    """
    variant = serving(state, digest)
    needed = variant is None and digest not in state.rolled_back
    if needed:
        print(f"deploy: content {digest} is new to {state.environment}: release")
    elif variant is None:
        print(
            f"deploy: nothing to release — content {digest} was rolled back from "
            f"{state.environment} by an A/B decision (rolled_back in its state file): merge "
            "a new model, or remove it from rolled_back to release it again"
        )
    else:
        print(
            f"deploy: nothing to release — {state.environment}'s {variant.name} "
            f"{variant.bento} serves content {digest} (same model, same serving code)"
        )
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a", encoding="utf-8") as handle:
            handle.write(f"release={'true' if needed else 'false'}\ndigest={digest}\n")
    return needed


def self_heal(
    settings: DriverSettings,
    state: DeploymentState,
    state_dir: Path,
    pending: list[DeploymentState] | None,
) -> tuple[list[str], list[str]]:
    """Make what runs equal to ``state``, git's; (what it found, what it did).

    A release applies its challenger before its state PR merges: what the last apply made
    run stays while it is the state of an open release PR (``pending``: those PRs' states of
    the environment; ``None``: unknown, GitHub could not be asked, so nothing is removed).
    Otherwise git's state wins: a closed release PR's challenger is removed.
    """
    env = state.environment
    if state.driver == "kubernetes":
        reconcile(settings, state, state_dir)
        return [], [f"kubectl apply of {env}'s manifests (the cluster reconciles)"]
    if state.champion is None:
        return [], [f"nothing to run: {env} has had no release yet"]
    desired, did = state, []
    applied = local_driver.applied_state(settings, env)
    if applied is not None and applied != state:
        if pending is None:
            desired = applied
            did.append("kept what the last apply made run: open state PRs unknown")
        elif applied in pending:
            desired = applied
            did.append("kept what the last apply made run: its release's state PR is open")
    found = local_driver.differences(settings, desired)
    revived = local_driver.revive(settings, env)
    if revived:
        did.append("started the supervisor, which restarted its programs")
    if found or revived:
        local_driver.apply(settings, desired)
        did.append(
            "applied " + ", ".join(f"{v.name}={v.bento} ({v.weight}%)" for v in desired.variants)
        )
    return found, did


def summary(env: str, found: list[str], did: list[str], healthy: bool) -> str:
    """The job summary of one reconcile (Markdown)."""
    lines = [f"### Reconcile {env}: {'in sync' if not found else 'repaired'}", ""]
    lines += [f"- found: {item}" for item in found] or ["- found: what runs is what git says"]
    lines += [f"- did: {item}" for item in did] or ["- did: nothing"]
    lines.append(f"- now: {'healthy' if healthy else 'NOT healthy (see make status)'}")
    return "\n".join(lines) + "\n"
