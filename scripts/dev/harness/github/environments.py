"""Deployment environments: required reviewers, deployment-branch policies, secrets, variables.

GitHub's rules (docs "Managing environments for deployment", "Using secrets in GitHub
Actions"): a job that names an environment waits for one of its required reviewers on every
run; a deployment-branch policy lets only matching refs deploy (others fail at once: "Branch
"x" is not allowed to deploy to production due to environment protection rules."); an
environment's secrets reach only the jobs that name it, after the rules passed, and
override repository secrets of the same name; so do its variables (``vars.AWS_ROLE_ARN``,
docs "Store information in variables": an environment's variable wins over the
repository's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scripts.dev.harness.workflows import matches


@dataclass
class Environment:
    """One environment's protection rules, secrets and variables.

    Attributes:
        reviewers: Required reviewers (people or teams); empty: no wait.
        branches: Deployment-branch policy (patterns of branch names); None: any ref.
        secrets: The environment's secrets.
        variables: The environment's configuration variables (``vars.X``).
    """

    reviewers: tuple[str, ...] = ()
    branches: tuple[str, ...] | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)


def branch_refusal(name: str, environment: Environment, ref: str) -> str | None:
    """GitHub's message when ``ref`` may not deploy to ``name``, or None."""
    if environment.branches is None:
        return None
    branch = ref.removeprefix("refs/heads/")
    # GitHub's patterns: ``*`` stays within a path segment (``release/*/*``).
    if ref.startswith("refs/heads/") and matches(environment.branches, branch):
        return None
    return (
        f'Branch "{branch}" is not allowed to deploy to {name} due to environment '
        "protection rules."
    )


def run_secrets(
    repository: Mapping[str, str],
    environments: Mapping[str, Environment],
    targeted: Iterable[str],
) -> dict[str, str]:
    """The secrets one act run gets: the repository's, then its jobs' environments'.

    act passes secrets per run, not per job: a job of the run that names no environment
    sees them too — the one approximation (docs/harness.md).
    """
    secrets = dict(repository)
    for name in sorted(set(targeted)):
        if name in environments:
            secrets.update(environments[name].secrets)
    return secrets


def run_variables(
    repository: Mapping[str, str],
    environments: Mapping[str, Environment],
    targeted: Iterable[str],
) -> dict[str, str]:
    """The variables one act run gets: the repository's, then its jobs' environments'.

    The same per-run approximation as :func:`run_secrets`: act passes ``--var`` per run, so
    a job of the run sees the variables of every environment the run targets (the last in
    name order wins where two set one).
    """
    variables = dict(repository)
    for name in sorted(set(targeted)):
        if name in environments:
            variables.update(environments[name].variables)
    return variables
