"""The storage roles' policies (docs/iam/) as scripts/dev/s3.py renders them for moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.dev.s3 import POLICIES, S3Endpoint, S3ServerError, role_policy, user_name

WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def allowed(role: str) -> dict[str, set[str]]:
    """Action -> resources ``role`` is allowed, for bucket ``b`` and prefix ``dvc-team``."""
    document: dict[str, Any] = json.loads(role_policy(role, "b", "dvc-team"))
    found: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        resources = statement["Resource"]
        for action in [actions] if isinstance(actions, str) else actions:
            found.setdefault(action, set()).update(
                [resources] if isinstance(resources, str) else resources
            )
    return found


def test_every_role_file_renders_to_a_policy_without_placeholders() -> None:
    roles = sorted(path.stem.removeprefix("storage-") for path in POLICIES.glob("storage-*"))
    assert roles == ["deploy", "pr", "release"]
    for role in roles:
        text = role_policy(role, "b", "/dvc-team/")
        assert "${" not in text
        assert json.loads(text)["Version"] == "2012-10-17"


def test_the_pr_role_writes_only_the_pr_remote() -> None:
    pr = allowed("pr")
    writes = {action: pr[action] for action in WRITES & set(pr)}
    assert writes == {
        "s3:PutObject": {"arn:aws:s3:::b/dvc-team/pr/*"},
        "s3:AbortMultipartUpload": {"arn:aws:s3:::b/dvc-team/pr/*"},
    }
    assert pr["s3:GetObject"] == {"arn:aws:s3:::b/dvc-team/*"}


def test_the_release_role_writes_the_remote_and_the_deploy_role_nothing() -> None:
    assert allowed("release")["s3:PutObject"] == {"arn:aws:s3:::b/dvc-team/*"}
    deploy = allowed("deploy")
    assert not WRITES & set(deploy)
    assert deploy["s3:GetObject"] == allowed("pr")["s3:GetObject"]


def test_listing_is_unconditioned_so_a_missing_key_is_a_404() -> None:
    # S3 answers a HEAD of a missing key 404 only to a caller allowed s3:ListBucket on the
    # bucket; a request without an s3:prefix (HEAD, GET) matches no prefix condition, so a
    # conditioned grant would turn "not there yet" into 403 (docs/storage-trust.md).
    for role in ("pr", "release", "deploy"):
        document = json.loads(role_policy(role, "b", "dvc-team"))
        (listing,) = [s for s in document["Statement"] if s["Action"] == "s3:ListBucket"]
        assert listing["Resource"] == "arn:aws:s3:::b"
        assert "Condition" not in listing


@pytest.mark.parametrize(("role", "prefix"), [("admin", "dvc"), ("pr", "/")])
def test_an_unknown_role_or_an_empty_prefix_is_refused(role: str, prefix: str) -> None:
    with pytest.raises(S3ServerError, match=f"storage role '{role}'"):
        role_policy(role, "b", prefix)


def test_role_keys_need_an_iam_enforcing_server() -> None:
    with pytest.raises(S3ServerError, match="does not enforce IAM"):
        S3Endpoint("http://127.0.0.1:9", "b").role_keys("pr", "dvc")


def test_user_names_keep_to_iam_s_characters() -> None:
    assert user_name("pr", "team/dvc data") == "storage-pr-team-dvc-data"
    assert len(user_name("release", "x" * 100)) == 64
