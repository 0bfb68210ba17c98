"""GitHub's OIDC tokens and AWS's side of them: claims, trust policies, STS, the roles.

What GitHub and AWS do when a job runs aws-actions/configure-aws-credentials with
``role-to-assume`` (docs/oidc.md):

* GitHub mints a token only for a job with ``permissions: id-token: write`` (never for a
  fork's pull request); its claims (GitHub docs, "OpenID Connect reference", OIDC token
  claims and example subject claims) name the repository and, in ``sub``, the job's
  environment when it has one, else ``pull_request`` for a pull request, else the ref:
  :func:`subject`, :func:`mint`;
* STS (``AssumeRoleWithWebIdentity``) finds the account's IAM OIDC provider for the
  issuer, checks the token's audience against the provider's client ids, and evaluates the
  role's trust policy against the claims (:func:`evaluate_trust`); refused, it answers
  ``AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity``.

moto's STS accepts any token for any role, so the harness does the provider and trust
checks here (:func:`assume_role`) before it asks moto for the credentials. The endpoint is
the sandbox's (scripts/dev/s3.py); with moto's IAM enforcement every call must be signed,
even those AWS takes unsigned, so calls carry SigV4 signatures (:func:`aws_call`), by the
STS reader's keys (:func:`sts_reader_env`) where the endpoint enforces IAM.
:func:`create_role` sets up one environment's role as docs/oidc.md tells a team to.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scripts.dev.workspace import PROJECT_ROOT

ISSUER = "https://token.actions.githubusercontent.com"
PROVIDER = "token.actions.githubusercontent.com"
# configure-aws-credentials' default ``audience`` input.
AUDIENCE = "sts.amazonaws.com"
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"
# Claims AWS STS can evaluate as ``token.actions.githubusercontent.com:<claim>`` condition
# keys: aud and sub, and since 2026-01 a set of GitHub's own (AWS What's New, "AWS STS
# supports validation of identity provider claims"). Other claims are absent to IAM.
CONDITION_CLAIMS = (
    "aud",
    "sub",
    "actor",
    "job_workflow_ref",
    "repository",
    "workflow",
    "ref",
    "environment",
)
TRUST_TEMPLATES = PROJECT_ROOT / "docs" / "iam"
REGION = "us-east-1"
STS_READER = "gitops-ml-sts-reader"
# What the reader may do: what STS itself reads to decide, and the call it answers.
STS_READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:GetOpenIDConnectProvider",
                "sts:AssumeRoleWithWebIdentity",
            ],
            "Resource": "*",
        }
    ],
}


class AwsError(Exception):
    """An error answer of an AWS query API: its code and message, as the SDKs show them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def access_denied(action: str = WEB_IDENTITY) -> AwsError:
    """STS's refusal: the same words whatever condition failed (AWS tells the caller no more)."""
    return AwsError("AccessDenied", f"Not authorized to perform {action}")


# --- GitHub: the token's claims ---------------------------------------------------------


def subject(repository: str, event_name: str, ref: str, environment: str | None) -> str:
    """``sub`` as GitHub's OIDC provider sets it by default.

    Args:
        repository: ``owner/repo`` (``owner@ID/repo@ID`` for a repository that emits the
            immutable form, GitHub changelog 2026-04-23).
        event_name: The event of the run.
        ref: ``github.ref``.
        environment: The job's environment, if it names one.
    """
    if environment:
        return f"repo:{repository}:environment:{environment}"
    if event_name == "pull_request":
        return f"repo:{repository}:pull_request"
    return f"repo:{repository}:ref:{ref}"


@dataclass(frozen=True)
class Claims:
    """The claims of one job's OIDC token that a trust policy may test."""

    sub: str
    aud: str
    ref: str
    event_name: str
    repository: str
    environment: str | None = None
    actor: str = ""
    workflow: str = ""
    job_workflow_ref: str = ""
    iss: str = ISSUER

    def as_token(self) -> dict[str, str]:
        """The JWT payload (claims GitHub leaves out are absent, as ``environment`` is)."""
        payload = {
            "iss": self.iss,
            "aud": self.aud,
            "sub": self.sub,
            "ref": self.ref,
            "event_name": self.event_name,
            "repository": self.repository,
            "repository_owner": self.repository.split("/", 1)[0].split("@", 1)[0],
            "actor": self.actor,
            "workflow": self.workflow,
            "job_workflow_ref": self.job_workflow_ref,
        }
        if self.environment:
            payload["environment"] = self.environment
        return payload

    def condition_values(self) -> dict[str, str]:
        """The request context STS builds from the token: ``token.actions...:<claim>`` keys."""
        token = self.as_token()
        return {f"{PROVIDER}:{claim}": token[claim] for claim in CONDITION_CLAIMS if claim in token}

    def jwt(self) -> str:
        """An unsigned JWT of the claims (moto reads none of it; its shape is GitHub's)."""

        def part(document: Mapping[str, Any]) -> str:
            raw = json.dumps(document, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(self.as_token())}."


def mint(environ: Mapping[str, str], environment: str | None, audience: str = AUDIENCE) -> Claims:
    """The claims GitHub puts in this job's token, from the runner's ``GITHUB_*`` variables."""
    repository = environ.get("GITHUB_REPOSITORY", "")
    event_name = environ.get("GITHUB_EVENT_NAME", "")
    ref = environ.get("GITHUB_REF", "")
    return Claims(
        sub=subject(repository, event_name, ref, environment),
        aud=audience,
        ref=ref,
        event_name=event_name,
        repository=repository,
        environment=environment or None,
        actor=environ.get("GITHUB_ACTOR", ""),
        workflow=environ.get("GITHUB_WORKFLOW", ""),
        job_workflow_ref=environ.get("GITHUB_WORKFLOW_REF", ""),
    )


# --- IAM: a role's trust policy ---------------------------------------------------------


@dataclass(frozen=True)
class TrustDecision:
    """Whether a trust policy lets a principal assume the role, and why (for the log only)."""

    allowed: bool
    reason: str


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def _like(pattern: str, value: str) -> bool:
    """IAM's ``StringLike``: ``*`` any run of characters (``/`` and ``:`` too), ``?`` one."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


STRING_TESTS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringEqualsIgnoreCase": lambda pattern, value: pattern.lower() == value.lower(),
    "StringLike": _like,
}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}


def _condition_holds(operator: str, key: str, wanted: list[str], values: Mapping[str, str]) -> bool:
    """One ``operator: {key: wanted}`` entry against the request context.

    Raises:
        ValueError: For an operator the harness does not evaluate (never allow by accident).
    """
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if qualifier not in ("", "ForAnyValue", "ForAllValues") or (
        name not in STRING_TESTS and name not in NEGATED
    ):
        raise ValueError(
            f"condition operator {operator}: not evaluated by the harness (one of "
            f"{sorted([*STRING_TESTS, *NEGATED])}, with IfExists, ForAnyValue: or ForAllValues:)"
        )
    if key not in values:
        # ForAllValues holds for an absent key: the trap configure-aws-credentials' README
        # warns about. Negated operators and ...IfExists match an absent key too (IAM User
        # Guide, "Condition operators"); the others do not.
        return qualifier == "ForAllValues" or if_exists or name in NEGATED
    if name in NEGATED:
        test = STRING_TESTS[NEGATED[name]]
        return not any(test(pattern, values[key]) for pattern in wanted)
    return any(STRING_TESTS[name](pattern, values[key]) for pattern in wanted)


def _failed_condition(conditions: object, values: Mapping[str, str]) -> str | None:
    """The first condition of a statement that does not hold, as text; None when all hold."""
    if not isinstance(conditions, Mapping):
        return None
    for operator, tests in conditions.items():
        for key, wanted in dict(tests).items():
            if not _condition_holds(str(operator), str(key), _listed(wanted), values):
                got = values.get(str(key), "(absent)")
                return f"{operator} {key} {_listed(wanted)} does not hold for {got!r}"
    return None


def _principal_matches(principal: object, kind: str, identity: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return any(item in ("*", identity) for item in _listed(principal.get(kind)))


def _action_matches(actions: object, action: str) -> bool:
    return any(_like(pattern.lower(), action.lower()) for pattern in _listed(actions))


def evaluate_trust(
    policy: Mapping[str, Any],
    values: Mapping[str, str],
    principal: str,
    principal_kind: str = "Federated",
    action: str = WEB_IDENTITY,
) -> TrustDecision:
    """IAM's evaluation of a role's trust policy for one request.

    An explicit ``Deny`` that matches wins; else an ``Allow`` whose action, principal and
    every condition match allows; else the request is implicitly denied.

    Args:
        policy: The role's trust policy (``AssumeRolePolicyDocument``).
        values: The request context (:meth:`Claims.condition_values`).
        principal: The caller: the OIDC provider's ARN, or an IAM identity's ARN.
        principal_kind: ``Federated`` or ``AWS``.
        action: ``sts:AssumeRoleWithWebIdentity`` or ``sts:AssumeRole``.
    """
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    reasons: list[str] = []
    allowed_by: str | None = None
    for index, statement in enumerate(statements):
        label = statement.get("Sid") or f"statement {index}"
        if "NotAction" in statement or "NotPrincipal" in statement:
            raise ValueError(f"{label}: NotAction/NotPrincipal are not evaluated by the harness")
        if not _action_matches(statement.get("Action"), action):
            reasons.append(f"{label}: action is not {action}")
            continue
        if not _principal_matches(statement.get("Principal"), principal_kind, principal):
            reasons.append(f"{label}: principal is not {principal_kind} {principal}")
            continue
        failed = _failed_condition(statement.get("Condition"), values)
        if failed:
            reasons.append(f"{label}: {failed}")
            continue
        if statement.get("Effect") == "Deny":
            return TrustDecision(False, f"{label}: explicit Deny")
        if statement.get("Effect") == "Allow":
            allowed_by = allowed_by or label
    if allowed_by:
        return TrustDecision(True, f"{allowed_by} allows {action}")
    return TrustDecision(False, "; ".join(reasons) or "the policy has no statement")


class TrustRefusal(AwsError):
    """STS's AccessDenied for a trust policy that refuses; ``decision`` says which condition."""

    def __init__(self, decision: TrustDecision) -> None:
        super().__init__("AccessDenied", f"Not authorized to perform {WEB_IDENTITY}")
        self.decision = decision


def render_trust(environment: str, account: str, repository: str) -> dict[str, Any]:
    """``docs/iam/trust-<environment>.json`` with ``${ACCOUNT}`` and ``${REPOSITORY}`` filled in.

    Raises:
        FileNotFoundError: When no template exists for the environment.
        ValueError: When a placeholder is left over.
    """
    text = (TRUST_TEMPLATES / f"trust-{environment}.json").read_text(encoding="utf-8")
    text = text.replace("${ACCOUNT}", account).replace("${REPOSITORY}", repository)
    if "${" in text:
        raise ValueError(f"trust-{environment}.json: unknown placeholder left: {text!r}")
    document: dict[str, Any] = json.loads(text)
    return document


# --- AWS query APIs (IAM, STS), signed with SigV4 ---------------------------------------


@dataclass(frozen=True)
class AwsKeys:
    """An access key (with its session token for temporary credentials)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "AWS_") -> AwsKeys | None:
        """``<prefix>ACCESS_KEY_ID``/``SECRET_ACCESS_KEY``/``SESSION_TOKEN``; None without."""
        key_id = env.get(f"{prefix}ACCESS_KEY_ID", "")
        secret = env.get(f"{prefix}SECRET_ACCESS_KEY", "")
        if not key_id or not secret:
            return None
        return cls(key_id, secret, env.get(f"{prefix}SESSION_TOKEN", ""))


# Signs calls to an endpoint that checks no keys (moto without IAM enforcement).
PLACEHOLDER_KEYS = AwsKeys("gitops-ml-sts-standin", "unused")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sigv4_headers(
    url: str, body: bytes, service: str, keys: AwsKeys, now: dt.datetime, region: str = REGION
) -> dict[str, str]:
    """Headers of a SigV4-signed ``POST`` of a form ``body`` to ``url`` (AWS SigV4 reference)."""
    parts = urllib.parse.urlsplit(url)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "host": parts.netloc,
        "x-amz-date": stamp,
    }
    if keys.session_token:
        headers["x-amz-security-token"] = keys.session_token
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "POST",
            urllib.parse.quote(parts.path or "/"),
            parts.query,
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + keys.secret_access_key).encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={keys.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _text(root: ET.Element, name: str) -> str:
    found = root.find(f".//{{*}}{name}")
    if found is None:
        found = root.find(f".//{name}")
    return (found.text or "") if found is not None else ""


def aws_call(
    endpoint: str, service: str, action: str, params: Mapping[str, str], keys: AwsKeys
) -> ET.Element:
    """One call of a query API (IAM, STS): its parsed XML answer.

    Raises:
        AwsError: On an error answer (its code and message) or no answer at all.
    """
    version = "2011-06-15" if service == "sts" else "2010-05-08"
    body = urllib.parse.urlencode({"Action": action, "Version": version, **params}).encode()
    url = endpoint.rstrip("/") + "/"
    now = dt.datetime.now(dt.UTC)
    request = urllib.request.Request(
        url, data=body, headers=sigv4_headers(url, body, service, keys, now), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return ET.fromstring(response.read())
    except urllib.error.HTTPError as error:
        answer = error.read()
        try:
            root = ET.fromstring(answer)
        except ET.ParseError:
            raise AwsError(f"HTTP{error.code}", answer.decode(errors="replace")[:300]) from None
        raise AwsError(_text(root, "Code") or f"HTTP{error.code}", _text(root, "Message")) from None
    except OSError as error:
        raise AwsError("EndpointConnectionError", f"{url}: {error}") from None


def _policy_document(raw: str) -> dict[str, Any]:
    """A policy document as IAM returns it: URL-encoded JSON (AWS), or plain JSON (moto)."""
    text = raw if raw.lstrip().startswith("{") else urllib.parse.unquote(raw)
    document: dict[str, Any] = json.loads(text)
    return document


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials from STS, never printed."""

    keys: AwsKeys
    expiration: str
    assumed_role_arn: str


def caller_identity(endpoint: str, keys: AwsKeys) -> tuple[str, str]:
    """``sts:GetCallerIdentity``: the account and ARN of ``keys``."""
    root = aws_call(endpoint, "sts", "GetCallerIdentity", {}, keys)
    return _text(root, "Account"), _text(root, "Arn")


def role_name(role_arn: str) -> str:
    """The role's name: the last part of ``arn:aws:iam::ACCOUNT:role/path/NAME``."""
    return role_arn.rsplit("/", 1)[-1]


def provider_arn(account: str) -> str:
    """The IAM OIDC provider of GitHub's issuer in ``account``."""
    return f"arn:aws:iam::{account}:oidc-provider/{PROVIDER}"


def trust_policy(endpoint: str, reader: AwsKeys, role_arn: str) -> dict[str, Any] | None:
    """The role's trust policy (``iam:GetRole``), None when no such role exists."""
    try:
        root = aws_call(endpoint, "iam", "GetRole", {"RoleName": role_name(role_arn)}, reader)
    except AwsError as error:
        if error.code == "NoSuchEntity":
            return None
        raise
    return _policy_document(_text(root, "AssumeRolePolicyDocument"))


def provider_audiences(endpoint: str, reader: AwsKeys, account: str) -> list[str] | None:
    """The client ids (audiences) of the account's provider for GitHub; None without one."""
    params = {"OpenIDConnectProviderArn": provider_arn(account)}
    try:
        root = aws_call(endpoint, "iam", "GetOpenIDConnectProvider", params, reader)
    except AwsError as error:
        if error.code == "NoSuchEntity":
            return None
        raise
    return [item.text or "" for item in root.iterfind(".//{*}ClientIDList/{*}member")]


def credentials_from(root: ET.Element) -> Credentials:
    """The ``Credentials`` of an ``AssumeRole*`` answer."""
    keys = AwsKeys(
        _text(root, "AccessKeyId"), _text(root, "SecretAccessKey"), _text(root, "SessionToken")
    )
    return Credentials(keys, _text(root, "Expiration"), _text(root, "Arn"))


def assume_role(
    endpoint: str,
    reader: AwsKeys,
    role_arn: str,
    claims: Claims,
    session_name: str = "GitHubActions",
    duration: int = 3600,
) -> Credentials:
    """``sts:AssumeRoleWithWebIdentity`` as AWS decides it, moto issuing the credentials.

    Raises:
        AwsError: ``InvalidIdentityToken`` without a provider for the issuer or with an
            audience it does not list; ``AccessDenied`` when the role does not exist or its
            trust policy refuses the claims (the checks moto does not make).
    """
    account = role_arn.split(":")[4]
    audiences = provider_audiences(endpoint, reader, account)
    if audiences is None:
        raise AwsError(
            "InvalidIdentityToken",
            f"No OpenIDConnect provider found in your account for {claims.iss}",
        )
    if claims.aud not in audiences:
        raise AwsError("InvalidIdentityToken", "Incorrect token audience")
    policy = trust_policy(endpoint, reader, role_arn)
    if policy is None:
        raise access_denied()
    decision = evaluate_trust(policy, claims.condition_values(), provider_arn(account))
    if not decision.allowed:
        raise TrustRefusal(decision)
    params = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "WebIdentityToken": claims.jwt(),
        "DurationSeconds": str(duration),
    }
    return credentials_from(aws_call(endpoint, "sts", "AssumeRoleWithWebIdentity", params, reader))


# --- Setting up AWS as docs/oidc.md says ------------------------------------------------


def _admin_keys(admin_env: Mapping[str, str]) -> AwsKeys:
    keys = AwsKeys.from_env(admin_env)
    if keys is None:
        raise AwsError("MissingCredentials", "admin_env has no AWS_ACCESS_KEY_ID/SECRET")
    return keys


def _idempotent(endpoint: str, action: str, params: Mapping[str, str], keys: AwsKeys) -> bool:
    """Make an IAM call; False when the entity already exists (a sandbox set up twice)."""
    try:
        aws_call(endpoint, "iam", action, params, keys)
    except AwsError as error:
        if error.code == "EntityAlreadyExists":
            return False
        raise
    return True


def create_role(
    endpoint_url: str,
    admin_env: Mapping[str, str],
    environment: str,
    repository: str,
    policy_json: str,
) -> str:
    """Environment ``environment``'s role, as docs/oidc.md has a team create it.

    GitHub's OIDC provider in the account (audience ``sts.amazonaws.com``), the role
    ``gitops-ml-<environment>`` trusting it by ``docs/iam/trust-<environment>.json``, and
    the permissions policy ``policy_json`` (a rendered ``docs/iam/storage-<role>.json``)
    inline. Called again, it replaces the trust and permissions policies.

    Args:
        endpoint_url: The IAM/STS endpoint (the sandbox's moto server).
        admin_env: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` of an identity allowed IAM.
        environment: The GitHub environment (``staging``, ``production-sync``...).
        repository: ``${REPOSITORY}`` of the template: ``owner/repo`` as the ``sub`` claim
            names it.
        policy_json: The permissions policy document.

    Returns:
        The role's ARN, for the environment's ``AWS_ROLE_ARN`` variable.
    """
    keys = _admin_keys(admin_env)
    account, _ = caller_identity(endpoint_url, keys)
    _idempotent(
        endpoint_url,
        "CreateOpenIDConnectProvider",
        {
            "Url": ISSUER,
            "ClientIDList.member.1": AUDIENCE,
            # IAM no longer checks it for GitHub's issuer; the API still wants one.
            "ThumbprintList.member.1": "6938fd4d98bab03faadb97b34396831e3780aea1",
        },
        keys,
    )
    name = f"gitops-ml-{environment}"
    trust = json.dumps(render_trust(environment, account, repository))
    if not _idempotent(
        endpoint_url, "CreateRole", {"RoleName": name, "AssumeRolePolicyDocument": trust}, keys
    ):
        update = {"RoleName": name, "PolicyDocument": trust}
        aws_call(endpoint_url, "iam", "UpdateAssumeRolePolicy", update, keys)
    aws_call(
        endpoint_url,
        "iam",
        "PutRolePolicy",
        {"RoleName": name, "PolicyName": "storage", "PolicyDocument": policy_json},
        keys,
    )
    return f"arn:aws:iam::{account}:role/{name}"


def sts_reader_env(endpoint_url: str, admin_env: Mapping[str, str]) -> dict[str, str]:
    """Keys for the stand-in to read roles and providers and call STS with.

    AWS's STS reads IAM itself and takes ``AssumeRoleWithWebIdentity`` unsigned; moto with
    IAM enforcement wants every call signed by a known key whose policies allow it. These
    (``GITOPS_ML_STS_ACCESS_KEY_ID``/``..._SECRET_ACCESS_KEY``) go into the jobs' environment
    (``Sandbox.job_env``); without them the stand-in signs with placeholder keys, which
    only an endpoint without IAM enforcement accepts.
    """
    keys = _admin_keys(admin_env)
    _idempotent(endpoint_url, "CreateUser", {"UserName": STS_READER}, keys)
    aws_call(
        endpoint_url,
        "iam",
        "PutUserPolicy",
        {
            "UserName": STS_READER,
            "PolicyName": "sts-standin",
            "PolicyDocument": json.dumps(STS_READER_POLICY),
        },
        keys,
    )
    root = aws_call(endpoint_url, "iam", "CreateAccessKey", {"UserName": STS_READER}, keys)
    return {
        "GITOPS_ML_STS_ACCESS_KEY_ID": _text(root, "AccessKeyId"),
        "GITOPS_ML_STS_SECRET_ACCESS_KEY": _text(root, "SecretAccessKey"),
    }
