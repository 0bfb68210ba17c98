"""The aws-actions/configure-aws-credentials stand-in: GitHub's OIDC token, AWS's trust check.

It follows the action's ``src/index.ts`` (v6.2.3) for the paths the workflows take:

* ``role-to-assume`` with the job's ``id-token: write`` (and no keys): OIDC. The token
  carries the claims GitHub would mint for this job (:func:`scripts.dev.harness.oidc.mint`,
  the job's environment from ``GITOPS_ML_JOB_ENVIRONMENTS``); STS's checks are
  :func:`scripts.dev.harness.oidc.assume_role`'s. Refused: "Could not assume role with
  OIDC: Not authorized to perform sts:AssumeRoleWithWebIdentity".
* ``role-to-assume`` without ``id-token: write`` (GitHub then gives the runner no
  ``ACTIONS_ID_TOKEN_REQUEST_*``): the action says "Did you mean to set the `id-token`
  permission?" and falls back to the credentials around it; with none it fails, "Credentials
  could not be loaded, please check your action inputs: Could not load credentials from
  any providers". With keys it calls ``sts:AssumeRole``, which an OIDC-only trust policy
  refuses.
* ``aws-access-key-id``/``aws-secret-access-key`` without a role: the keys, checked with
  ``sts:GetCallerIdentity``, exported.

What it exports (``$GITHUB_ENV``: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the three
credential variables) is masked first (``::add-mask::``, as ``core.setSecret``), never
printed. Not modelled: retries (the action tries 12 times with backoff), profiles,
``role-chaining``, ``web-identity-token-file``, session tags, the post-job cleanup.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.dev.harness.github.state import Record
from scripts.dev.harness.oidc import (
    AUDIENCE,
    PLACEHOLDER_KEYS,
    AwsError,
    AwsKeys,
    Credentials,
    TrustRefusal,
    assume_role,
    aws_call,
    caller_identity,
    credentials_from,
    evaluate_trust,
    mint,
    trust_policy,
)

REGION = re.compile(r"^[a-z0-9-]+$")
NO_ID_TOKEN = (
    "It looks like you might be trying to authenticate with OIDC. Did you mean to set the "
    "`id-token` permission? If you are not trying to authenticate with OIDC and the action "
    "is working successfully, you can ignore this message."
)
NO_CREDENTIALS = (
    "Credentials could not be loaded, please check your action inputs: "
    "Could not load credentials from any providers"
)


class StepFailed(Exception):
    """The step fails with this message (``core.setFailed``)."""


def id_token_granted(environ: Mapping[str, str]) -> bool:
    """Whether GitHub gives this job an OIDC token: ``id-token: write``, and not a fork's PR.

    A job's scopes come from the run's record (``permissions.json``, what
    ``Runs.act`` stored); a job without them never has ``id-token`` (GitHub's default
    ``GITHUB_TOKEN`` permissions do not include it). A fork's pull request gets a read-only
    token whatever ``permissions:`` say.
    """
    event_path = environ.get("GITHUB_EVENT_PATH", "")
    if environ.get("GITHUB_EVENT_NAME") == "pull_request" and event_path:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
        if event.get("pull_request", {}).get("head", {}).get("repo", {}).get("fork"):
            return False
    record = environ.get("GITOPS_ML_RECORD", "")
    if not record or not Path(record).is_dir():
        return False
    scopes = Record(Path(record)).job_scopes(environ.get("GITHUB_JOB", ""))
    return (scopes or {}).get("id-token") == "write"


def job_environments(environ: Mapping[str, str]) -> list[str]:
    """The environments this job names (``GITOPS_ML_JOB_ENVIRONMENTS``, the harness's map).

    One for a plain job; several for a matrix job whose ``environment:`` is a matrix value
    (act gives a composite action no ``matrix`` context, so which row runs is unknown here).
    """
    table = json.loads(environ.get("GITOPS_ML_JOB_ENVIRONMENTS") or "{}")
    found = table.get(environ.get("GITHUB_JOB", ""), [])
    return [found] if isinstance(found, str) else [str(name) for name in found]


def sts_endpoint(environ: Mapping[str, str]) -> str:
    """The ``sts-endpoint`` input, else the SDK's ``AWS_ENDPOINT_URL_STS``/``AWS_ENDPOINT_URL``."""
    for name in ("STS_ENDPOINT", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
        if environ.get(name):
            return environ[name]
    raise StepFailed(
        "configure-aws-credentials stand-in: no STS here; the harness's jobs reach the "
        "sandbox's endpoint through AWS_ENDPOINT_URL (or the sts-endpoint input)"
    )


def reader_keys(environ: Mapping[str, str]) -> AwsKeys:
    """The keys STS's reads are signed with (:func:`~scripts.dev.harness.oidc.sts_reader_env`)."""
    return AwsKeys.from_env(environ, "GITOPS_ML_STS_") or PLACEHOLDER_KEYS


def assume_with_oidc(environ: Mapping[str, str], endpoint: str, role: str) -> Credentials:
    """The OIDC path; for a matrix job, the first of its environments the role trusts."""
    audience = environ.get("AUDIENCE") or AUDIENCE
    candidates = job_environments(environ) or [""]
    refusal: TrustRefusal | None = None
    for environment in candidates:
        claims = mint(environ, environment or None, audience)
        try:
            return assume_role(
                endpoint,
                reader_keys(environ),
                role,
                claims,
                environ.get("ROLE_SESSION_NAME") or "GitHubActions",
                int(environ.get("ROLE_DURATION") or 3600),
            )
        except TrustRefusal as error:
            print(
                f"configure-aws-credentials stand-in: {role}'s trust policy refuses sub "
                f"{claims.sub!r}: {error.decision.reason} (AWS answers AccessDenied only)"
            )
            refusal = error
        except AwsError as error:
            raise StepFailed(f"Could not assume role with OIDC: {error.message}") from None
    assert refusal is not None
    raise StepFailed(f"Could not assume role with OIDC: {refusal.message}")


def assume_with_keys(endpoint: str, source: AwsKeys, role: str, reader: AwsKeys) -> Credentials:
    """``sts:AssumeRole`` signed by ``source``: only a trust policy naming its ARN allows it."""
    _, arn = caller_identity(endpoint, source)
    policy = trust_policy(endpoint, reader, role)
    denied = f"User: {arn} is not authorized to perform: sts:AssumeRole on resource: {role}"
    if policy is None:
        raise StepFailed(denied)
    decision = evaluate_trust(policy, {}, arn, principal_kind="AWS", action="sts:AssumeRole")
    if not decision.allowed:
        raise StepFailed(denied)
    params = {"RoleArn": role, "RoleSessionName": "GitHubActions", "DurationSeconds": "3600"}
    return credentials_from(aws_call(endpoint, "sts", "AssumeRole", params, source))


def append(path: Path, values: Mapping[str, str]) -> None:
    """``KEY=value`` lines appended to ``$GITHUB_ENV`` or ``$GITHUB_OUTPUT``."""
    with path.open("a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key}={value}\n")


@dataclass(frozen=True)
class Outcome:
    """What a successful run leaves: variables for the next steps, and step outputs."""

    env: dict[str, str]
    outputs: dict[str, str]


def run(environ: Mapping[str, str]) -> Outcome:
    """The action's run for these inputs (``ROLE_TO_ASSUME``, ``REGION_INPUT``...).

    Raises:
        StepFailed: With the message the real action fails with.
    """
    region = environ.get("REGION_INPUT", "")
    if not region:
        raise StepFailed("Input required and not supplied: aws-region")
    if not REGION.match(region):
        raise StepFailed(f"Region is not valid: {region}")
    role = environ.get("ROLE_TO_ASSUME", "")
    key_input = AwsKeys.from_env(environ, "INPUT_AWS_")
    granted = id_token_granted(environ)
    if role and not key_input and not granted:
        print(NO_ID_TOKEN)
    endpoint = sts_endpoint(environ)
    try:
        if role and granted and not key_input:
            print("Assuming role with OIDC")
            keys = assume_with_oidc(environ, endpoint, role).keys
        else:
            source = key_input or AwsKeys.from_env(environ)
            if source is None:
                raise StepFailed(NO_CREDENTIALS)
            if role:
                keys = assume_with_keys(endpoint, source, role, reader_keys(environ)).keys
            else:
                print("Proceeding with IAM user credentials")
                keys = source
        # The action checks what it hands on (sts:GetCallerIdentity, always allowed).
        account, arn = caller_identity(endpoint, keys)
    except AwsError as error:
        raise StepFailed(f"{error.code}: {error.message}") from None
    if role:
        print(f"Authenticated as assumedRoleId {arn}")
    env = {
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
        # Empty clears an earlier step's token (the action's exportCredentials does too).
        "AWS_SESSION_TOKEN": keys.session_token,
    }
    return Outcome(env, {"aws-account-id": account, "authenticated-arn": arn})


def main() -> None:
    """Run the action; mask and export what it yields; fail the step as the action does."""
    try:
        outcome = run(os.environ)
    except StepFailed as failure:
        print(f"::error::{failure}")
        sys.exit(1)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if outcome.env[key]:
            print(f"::add-mask::{outcome.env[key]}")
    append(Path(os.environ["GITHUB_ENV"]), outcome.env)
    append(Path(os.environ["GITHUB_OUTPUT"]), outcome.outputs)


if __name__ == "__main__":
    main()
