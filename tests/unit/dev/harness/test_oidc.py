"""GitHub's OIDC claims, IAM's trust evaluation, and the configure-aws-credentials stand-in.

The unit tests need nothing running; the last test runs the stand-in's module as a job
step would, against moto's IAM-enforcing server (scripts/dev/s3.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.dev.harness.actions.aws_credentials import (
    NO_CREDENTIALS,
    NO_ID_TOKEN,
    StepFailed,
    id_token_granted,
    job_environments,
    run,
)
from scripts.dev.harness.github.environments import Environment, run_variables
from scripts.dev.harness.github.state import Record
from scripts.dev.harness.oidc import (
    AUDIENCE,
    PLACEHOLDER_KEYS,
    AwsError,
    AwsKeys,
    Claims,
    assume_role,
    caller_identity,
    create_role,
    evaluate_trust,
    mint,
    provider_arn,
    render_trust,
    sts_reader_env,
    subject,
)
from scripts.dev.s3 import S3Endpoint, role_policy, s3_server

REPOSITORY = "gitops-ml/sandbox"
ACCOUNT = "123456789012"
PROVIDER_ARN = provider_arn(ACCOUNT)
ENVIRONMENTS = ("staging", "production-sync", "release", "pr-storage")


def claims(event: str = "push", ref: str = "refs/heads/main", env: str | None = None) -> Claims:
    environ = {"GITHUB_REPOSITORY": REPOSITORY, "GITHUB_EVENT_NAME": event, "GITHUB_REF": ref}
    return mint(environ, env)


def trusts(policy: dict[str, Any], token: Claims) -> bool:
    return evaluate_trust(policy, token.condition_values(), PROVIDER_ARN).allowed


def web_identity_policy(condition: dict[str, Any], effect: str = "Allow") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": effect,
                "Principal": {"Federated": PROVIDER_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }
        ],
    }


@pytest.mark.parametrize(
    ("event", "ref", "environment", "expected"),
    [
        ("push", "refs/heads/main", "staging", f"repo:{REPOSITORY}:environment:staging"),
        # A job that names an environment gets the environment form, pull request or not.
        (
            "pull_request",
            "refs/pull/7/merge",
            "pr-storage",
            f"repo:{REPOSITORY}:environment:pr-storage",
        ),
        ("pull_request", "refs/pull/7/merge", None, f"repo:{REPOSITORY}:pull_request"),
        ("push", "refs/heads/feature", None, f"repo:{REPOSITORY}:ref:refs/heads/feature"),
        ("schedule", "refs/heads/main", None, f"repo:{REPOSITORY}:ref:refs/heads/main"),
    ],
)
def test_sub_names_the_environment_else_the_pull_request_else_the_ref(
    event: str, ref: str, environment: str | None, expected: str
) -> None:
    assert subject(REPOSITORY, event, ref, environment) == expected
    assert claims(event, ref, environment).sub == expected


def test_the_token_has_an_environment_claim_only_for_a_job_that_names_one() -> None:
    with_env = claims(env="release").condition_values()
    without = claims().condition_values()
    assert with_env["token.actions.githubusercontent.com:environment"] == "release"
    assert with_env["token.actions.githubusercontent.com:aud"] == AUDIENCE
    assert with_env["token.actions.githubusercontent.com:ref"] == "refs/heads/main"
    assert "token.actions.githubusercontent.com:environment" not in without
    # event_name is a claim of the token but no condition key AWS evaluates.
    assert claims().as_token()["event_name"] == "push"
    assert "token.actions.githubusercontent.com:event_name" not in without


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_template_trusts_only_its_environment(environment: str) -> None:
    policy = render_trust(environment, ACCOUNT, REPOSITORY)
    assert "${" not in json.dumps(policy)
    assert trusts(policy, claims(env=environment))
    others = [name for name in ENVIRONMENTS if name != environment]
    assert not any(trusts(policy, claims(env=other)) for other in others)
    assert not trusts(policy, claims())  # main, no environment: the ref form
    assert not trusts(policy, claims("pull_request", "refs/pull/7/merge"))


def test_a_mismatched_sub_or_audience_is_refused_and_the_reason_names_it() -> None:
    policy = render_trust("staging", ACCOUNT, REPOSITORY)
    decision = evaluate_trust(
        policy, claims("pull_request", "refs/pull/3/merge").condition_values(), PROVIDER_ARN
    )
    assert not decision.allowed
    assert f"repo:{REPOSITORY}:pull_request" in decision.reason
    other_audience = mint(
        {"GITHUB_REPOSITORY": REPOSITORY, "GITHUB_REF": "refs/heads/main"}, "staging", "sigstore"
    )
    assert not trusts(policy, other_audience)
    # Another account's provider is another principal.
    values = claims(env="staging").condition_values()
    assert not evaluate_trust(policy, values, provider_arn("999999999999")).allowed


def test_string_like_matches_a_wildcard_across_colons() -> None:
    policy = web_identity_policy(
        {
            "StringEquals": {"token.actions.githubusercontent.com:aud": AUDIENCE},
            "StringLike": {"token.actions.githubusercontent.com:sub": f"repo:{REPOSITORY}:*"},
        }
    )
    assert trusts(policy, claims("pull_request", "refs/pull/3/merge"))
    assert trusts(policy, claims(env="staging"))
    fork = mint({"GITHUB_REPOSITORY": "someone/sandbox", "GITHUB_EVENT_NAME": "push"}, "staging")
    assert not trusts(policy, fork)
    single = web_identity_policy(
        {"StringLike": {"token.actions.githubusercontent.com:ref": "refs/pull/?/merge"}}
    )
    assert trusts(single, claims("pull_request", "refs/pull/3/merge"))
    assert not trusts(single, claims("pull_request", "refs/pull/31/merge"))


def test_iam_evaluation_rules_deny_wins_for_all_values_matches_an_absent_claim() -> None:
    allow = web_identity_policy(
        {"StringEquals": {"token.actions.githubusercontent.com:aud": AUDIENCE}}
    )
    deny = web_identity_policy(
        {"StringEquals": {"token.actions.githubusercontent.com:ref": "refs/heads/main"}}, "Deny"
    )
    both = {"Version": "2012-10-17", "Statement": [*allow["Statement"], *deny["Statement"]]}
    assert trusts(allow, claims())
    assert not trusts(both, claims())
    assert trusts(both, claims(ref="refs/heads/feature"))
    # The trap configure-aws-credentials' README warns of: true when the claim is absent.
    trap = web_identity_policy(
        {"ForAllValues:StringEquals": {"token.actions.githubusercontent.com:environment": "x"}}
    )
    assert trusts(trap, claims())
    with pytest.raises(ValueError, match="NumericLessThan"):
        trusts(web_identity_policy({"NumericLessThan": {"x": "1"}}), claims())


def step_environ(tmp_path: Path, scopes: dict[str, str], **extra: str) -> dict[str, str]:
    """What the stand-in's step sees in job ``deploy`` of a push to main."""
    record = Record(tmp_path / "record")
    record.set_job_scopes({"deploy": scopes})
    return {
        "GITHUB_JOB": "deploy",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/main",
        "GITOPS_ML_RECORD": str(record.root),
        "GITOPS_ML_JOB_ENVIRONMENTS": json.dumps({"deploy": ["staging"]}),
        "REGION_INPUT": "us-east-1",
        "ROLE_TO_ASSUME": f"arn:aws:iam::{ACCOUNT}:role/gitops-ml-staging",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # never reached
        **extra,
    }


def test_without_id_token_the_action_finds_no_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = step_environ(tmp_path, {"contents": "read"})
    assert not id_token_granted(environ)
    with pytest.raises(StepFailed, match="Could not load credentials from any providers") as failed:
        run(environ)
    assert str(failed.value) == NO_CREDENTIALS
    assert NO_ID_TOKEN in capsys.readouterr().out


def test_a_forks_pull_request_gets_no_id_token_whatever_permissions_say(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"fork": True}}}}))
    granted = step_environ(tmp_path, {"id-token": "write"})
    assert id_token_granted(granted)
    fork = {**granted, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert not id_token_granted(fork)


def test_environment_variables_reach_a_run_that_targets_the_environment() -> None:
    environments = {
        "staging": Environment(variables={"AWS_ROLE_ARN": "arn:staging"}),
        "release": Environment(
            variables={"AWS_ROLE_ARN": "arn:release", "AWS_REGION": "eu-west-1"}
        ),
    }
    repository = {"AWS_REGION": "us-east-1", "TORCH_INDEX": "cpu"}
    assert run_variables(repository, environments, []) == repository
    assert run_variables(repository, environments, ["staging"]) == {
        **repository,
        "AWS_ROLE_ARN": "arn:staging",
    }
    assert run_variables(repository, environments, ["release"])["AWS_REGION"] == "eu-west-1"


def test_the_standin_reads_its_jobs_environments_from_the_harness() -> None:
    table = json.dumps({"deploy": ["staging"], "reconcile": ["production-sync", "staging"]})
    assert job_environments({"GITHUB_JOB": "deploy", "GITOPS_ML_JOB_ENVIRONMENTS": table}) == [
        "staging"
    ]
    assert job_environments({"GITHUB_JOB": "reconcile", "GITOPS_ML_JOB_ENVIRONMENTS": table}) == [
        "production-sync",
        "staging",
    ]
    assert job_environments({"GITHUB_JOB": "train", "GITOPS_ML_JOB_ENVIRONMENTS": table}) == []


@pytest.fixture(scope="module")
def iam_endpoint() -> Iterator[S3Endpoint]:
    with s3_server("oidc-bucket", iam=True) as endpoint:
        yield endpoint


def standin(environ: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The stand-in's step as act runs it (``$GITOPS_ML_PYTHON -P -m ...``)."""
    for name in ("GITHUB_ENV", "GITHUB_OUTPUT"):
        (cwd / name).write_text("")
        environ[name] = str(cwd / name)
    return subprocess.run(
        [sys.executable, "-P", "-m", "scripts.dev.harness.actions.aws_credentials"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True,
        text=True,
        check=False,
    )


def exported(cwd: Path) -> dict[str, str]:
    lines = (cwd / "GITHUB_ENV").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.integration
def test_the_standin_gets_credentials_for_its_environment_and_access_denied_for_a_pr(
    tmp_path: Path, iam_endpoint: S3Endpoint
) -> None:
    admin = iam_endpoint.env()
    policy = role_policy("deploy", iam_endpoint.bucket, "dvc")
    staging = create_role(iam_endpoint.url, admin, "staging", REPOSITORY, policy)
    pr_policy = role_policy("pr", iam_endpoint.bucket, "dvc")
    pr_role = create_role(iam_endpoint.url, admin, "pr-storage", REPOSITORY, pr_policy)
    reader = sts_reader_env(iam_endpoint.url, admin)
    base = step_environ(
        tmp_path,
        {"id-token": "write", "contents": "read"},
        AWS_ENDPOINT_URL=iam_endpoint.url,
        ROLE_TO_ASSUME=staging,
        **reader,
    )

    deploy = standin(dict(base), tmp_path)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    values = exported(tmp_path)
    keys = AwsKeys(
        values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"], values["AWS_SESSION_TOKEN"]
    )
    assert caller_identity(iam_endpoint.url, keys) == (
        ACCOUNT,
        f"arn:aws:sts::{ACCOUNT}:assumed-role/gitops-ml-staging/GitHubActions",
    )
    assert values["AWS_REGION"] == "us-east-1"
    # Printed only as the runner's mask commands, which the log never shows.
    for secret in (keys.secret_access_key, keys.session_token):
        assert all(
            line.startswith("::add-mask::") for line in deploy.stdout.splitlines() if secret in line
        )
    assert "authenticated-arn=" in (tmp_path / "GITHUB_OUTPUT").read_text()

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"fork": False}}}}))
    pull_request = {
        **base,
        "GITHUB_JOB": "deploy",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/5/merge",
        "GITHUB_EVENT_PATH": str(event),
        "GITOPS_ML_JOB_ENVIRONMENTS": "{}",
    }
    refused = standin(dict(pull_request), tmp_path)
    assert refused.returncode == 1
    assert (
        "::error::Could not assume role with OIDC: Not authorized to perform "
        "sts:AssumeRoleWithWebIdentity" in refused.stdout
    )
    assert exported(tmp_path) == {}

    # The PR's own environment and role: allowed.
    pr_storage = {
        **pull_request,
        "ROLE_TO_ASSUME": pr_role,
        "GITOPS_ML_JOB_ENVIRONMENTS": json.dumps({"deploy": ["pr-storage"]}),
    }
    assert standin(dict(pr_storage), tmp_path).returncode == 0
    assert exported(tmp_path)["AWS_SESSION_TOKEN"]

    # A matrix job over environments: the one its role trusts (the row is unknown here).
    matrix = {
        **base,
        "GITOPS_ML_JOB_ENVIRONMENTS": json.dumps({"deploy": ["production-sync", "staging"]}),
    }
    matrixed = standin(dict(matrix), tmp_path)
    assert matrixed.returncode == 0, matrixed.stdout
    assert "refuses sub 'repo:gitops-ml/sandbox:environment:production-sync'" in matrixed.stdout

    # moto's IAM enforcement wants STS's own reads signed by a known key.
    with pytest.raises(AwsError, match="InvalidClientTokenId"):
        assume_role(iam_endpoint.url, PLACEHOLDER_KEYS, staging, claims(env="staging"))
