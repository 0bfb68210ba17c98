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


def scoped(environment: str, name: str) -> str:
    """The name act gets ``environment``'s secret ``name`` under (see :func:`run_secrets`)."""
    return f"{environment}__{name}"


def job_secrets(
    repository: Mapping[str, str],
    environments: Mapping[str, Environment],
    environment: str | None,
) -> dict[str, str]:
    """What one job sees: the repository's secrets, overridden by its environment's."""
    if environment is None or environment not in environments:
        return dict(repository)
    return {**repository, **environments[environment].secrets}


def run_secrets(
    repository: Mapping[str, str],
    environments: Mapping[str, Environment],
    targeted: Iterable[str],
) -> dict[str, str]:
    """The secrets one act run gets, so that each job sees exactly what GitHub gives it.

    act passes secrets per run, not per job. The run gets the repository's secrets under
    their names (what a job without ``environment:`` reads) and, for each environment its
    jobs may use (``targeted``: the branch policies passed), what such a job sees
    (:func:`job_secrets`) under :func:`scoped` names; the workflow copy act runs reads
    those in the jobs that name the environment (``runs.scope_secrets``).
    """
    secrets = dict(repository)
    for name in sorted(set(targeted)):
        seen = job_secrets(repository, environments, name)
        secrets.update({scoped(name, key): value for key, value in seen.items()})
    return secrets


def run_variables(
    repository: Mapping[str, str],
    environments: Mapping[str, Environment],
    targeted: Iterable[str],
) -> dict[str, str]:
    """The variables one act run gets: the repository's, then its jobs' environments'.

    A per-run approximation (docs/harness.md): act passes ``--var`` per run, so a job of the
    run sees the variables of every environment the run targets (the last in name order
    wins where two set one); secrets are scoped per job (:func:`run_secrets`).
    """
    variables = dict(repository)
    for name in sorted(set(targeted)):
        if name in environments:
            variables.update(environments[name].variables)
    return variables
