"""Two trust levels in one bucket (docs/storage-trust.md), on an IAM-enforcing S3 server.

moto enforces docs/iam/'s policies (scripts/dev/s3.py, ``iam=True``): a pull request's keys
write only the ``pr`` remote (the default remote + ``/pr``), the release's write the whole
remote, the deploy role's write nothing. The DVC repository is a tiny one (a data file, one
stage) with the project's Makefile: ``make ci-repro``, ``make release-repro`` and
``make sync-lock`` run as the workflows and a developer run them, each with its role's keys.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from scripts.dev.s3 import S3Endpoint, s3_server
from tests.helpers import REPO_ROOT, Repo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "trust-bucket"
PREFIX = "dvc-team"
SCALE = """
from pathlib import Path
factor = int(Path("params.yaml").read_text().split(":")[1])
rows = Path("data.csv").read_text().split()[1:]
Path("scaled.csv").write_text("x\\n" + "".join(f"{int(r) * factor}\\n" for r in rows))
"""
# The deploy code's own archive calls (scripts/cd/archive.py), through the default remote.
ARCHIVE = """
import shutil, sys
from pathlib import Path
from scripts.cd import archive
if sys.argv[1] == "push":
    archive.push(Path(sys.argv[3]), sys.argv[2])
else:
    fetched = archive.fetch(sys.argv[2])
    print(fetched.read_text(), end="")
    shutil.rmtree(fetched.parent)
"""
PIPELINE = """stages:
  scale:
    cmd: python scale.py
    deps: [data.csv, scale.py]
    params: [scale]
    outs: [scaled.csv]
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with s3_server(BUCKET, iam=True) as endpoint:
        yield endpoint


def role_keys(s3: S3Endpoint, role: str) -> dict[str, str]:
    """The keys of ``role``; ``admin``: the endpoint's own (policy ``*``)."""
    if role == "admin":
        return {key: value for key, value in s3.env().items() if "KEY" in key}
    return s3.role_keys(role, PREFIX)


def bucket(s3: S3Endpoint, role: str) -> s3fs.S3FileSystem:
    """The bucket as ``role`` sees it (no cached listings: every call asks the server)."""
    keys = role_keys(s3, role)
    return s3fs.S3FileSystem(
        key=keys["AWS_ACCESS_KEY_ID"],
        secret=keys["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": s3.url, "region_name": "us-east-1"},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


class RoleRepo(Repo):
    """A clone whose commands hold one role's keys and no other AWS_ variable."""

    def __init__(self, path: Path, s3: S3Endpoint, role: str) -> None:
        super().__init__(path)
        self.s3 = s3
        self.role = role

    def env(self, **extra: str) -> dict[str, str]:
        inherited = super().env(VENV=sys.prefix, DVC_NO_ANALYTICS="1", **extra)
        return {
            **{name: value for name, value in inherited.items() if not name.startswith("AWS_")},
            **self.s3.env(),
            **role_keys(self.s3, self.role),
        }

    def make(self, target: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -o install: the project's environment serves; a tiny repository never installs.
        return self.run("make", "-o", "install", target, check=check)

    def clone(self, destination: Path, role: str, ref: str = "HEAD") -> RoleRepo:
        """``git clone`` at ``ref``: no DVC cache, no .dvc/config.local."""
        subprocess.run(["git", "clone", "-q", str(self.path), str(destination)], check=True)
        clone = RoleRepo(destination, self.s3, role)
        clone.run("git", "checkout", "-q", ref)
        return clone


def objects(s3: S3Endpoint, folder: str) -> set[str]:
    """Keys under ``PREFIX/folder`` (``""``: the whole remote), as the admin sees them."""
    base = "/".join(part for part in (BUCKET, PREFIX, folder) if part)
    return {key.removeprefix(f"{base}/") for key in bucket(s3, "admin").find(base)}


def md5_key(content: bytes) -> str:
    digest = hashlib.md5(content, usedforsecurity=False).hexdigest()
    return f"{digest[:2]}/{digest[2:]}"


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory, s3: S3Endpoint) -> RoleRepo:
    """The main branch, released: data, output and run-cache in the default remote."""
    path = tmp_path_factory.mktemp("trust") / "main"
    path.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, path / name)
    shutil.copytree(REPO_ROOT / "requirements", path / "requirements")
    (path / "data.csv").write_text("x\n1\n2\n3\n", encoding="utf-8")
    (path / "params.yaml").write_text("scale: 2\n", encoding="utf-8")
    (path / "scale.py").write_text(SCALE, encoding="utf-8")
    (path / "dvc.yaml").write_text(PIPELINE, encoding="utf-8")
    repo = RoleRepo(path, s3, "release")
    repo.run("git", "init", "-q", "-b", "main")
    repo.run("dvc", "init", "-q")
    repo.run("dvc", "config", "core.analytics", "false")
    s3.configure_dvc(path, prefix=PREFIX)
    repo.run("dvc", "add", "-q", "data.csv")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "A tiny pipeline, its remote in the bucket")
    repo.make("release-repro")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "Released (dvc.lock)")
    return repo


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory: pytest.TempPathFactory, main: RoleRepo) -> RoleRepo:
    """A branch that changes a parameter, reproduced by CI (PR keys), its lock committed."""
    ci = main.clone(tmp_path_factory.mktemp("trust") / "ci", role="pr")
    ci.run("git", "checkout", "-q", "-b", "triple")
    (ci.path / "params.yaml").write_text("scale: 3\n", encoding="utf-8")
    ci.run("git", "commit", "-q", "-am", "Triple")
    trained = ci.make("ci-repro").stdout
    assert "Running stage 'scale'" in trained, trained
    ci.run("git", "commit", "-q", "-am", "dvc.lock from CI")
    return ci


def test_pr_keys_write_the_pr_remote_only_and_read_everything(s3: S3Endpoint) -> None:
    bucket(s3, "admin").pipe(f"{BUCKET}/{PREFIX}/files/md5/00/main", b"main's object")
    pr = bucket(s3, "pr")
    for protected in ("bentos/credit_risk/abc1234.bento", "files/md5/00/main", "runs/00/x/y"):
        with pytest.raises(PermissionError):
            pr.pipe(f"{BUCKET}/{PREFIX}/{protected}", b"overwritten")
    pr.pipe(f"{BUCKET}/{PREFIX}/pr/files/md5/00/pull-request", b"a pull request's object")
    assert pr.cat(f"{BUCKET}/{PREFIX}/files/md5/00/main") == b"main's object"
    assert "pr/files/md5/00/pull-request" in objects(s3, "")


def test_release_keys_write_the_remote_and_deploy_keys_nothing(s3: S3Endpoint) -> None:
    release, deploy = bucket(s3, "release"), bucket(s3, "deploy")
    release.pipe(f"{BUCKET}/{PREFIX}/bentos/credit_risk/abc1234.bento", b"a Bento")
    release.pipe(f"{BUCKET}/{PREFIX}/files/md5/00/release", b"a release's object")
    with pytest.raises(PermissionError):
        release.pipe(f"{BUCKET}/logs/elsewhere", b"outside the remote")
    for target in ("bentos/credit_risk/abc1234.bento", "files/md5/00/release", "pr/x"):
        with pytest.raises(PermissionError):
            deploy.pipe(f"{BUCKET}/{PREFIX}/{target}", b"overwritten")
    assert deploy.cat(f"{BUCKET}/{PREFIX}/bentos/credit_risk/abc1234.bento") == b"a Bento"


def test_only_the_release_keeps_bento_archives_and_deploys_fetch_them(
    main: RoleRepo, tmp_path: Path
) -> None:
    archive = tmp_path / "credit_risk-f00dcaf.bento"
    archive.write_text("a released Bento", encoding="utf-8")
    keys = {role: RoleRepo(main.path, main.s3, role) for role in ("pr", "deploy", "release")}
    for role in ("pr", "deploy"):
        push = keys[role].run(
            "python", "-c", ARCHIVE, "push", "credit_risk:f00dcaf", str(archive), check=False
        )
        assert push.returncode != 0
        assert "PermissionError" in push.stderr, push.stderr
    keys["release"].run("python", "-c", ARCHIVE, "push", "credit_risk:f00dcaf", str(archive))
    fetched = keys["deploy"].run("python", "-c", ARCHIVE, "fetch", "credit_risk:f00dcaf")
    assert fetched.stdout == "a released Bento"


def test_ci_repro_pushes_outputs_and_run_cache_to_the_pr_remote_only(
    pull_request: RoleRepo, s3: S3Endpoint
) -> None:
    output = md5_key((pull_request.path / "scaled.csv").read_bytes())
    assert (pull_request.path / "scaled.csv").read_text(encoding="utf-8") == "x\n3\n6\n9\n"
    assert f"files/md5/{output}" in objects(s3, "pr")
    assert f"files/md5/{output}" not in objects(s3, "")
    assert objects(s3, "pr/runs"), "the run-cache was not pushed to the pr remote"


def test_a_push_to_the_default_remote_with_pr_keys_fails(pull_request: RoleRepo) -> None:
    result = pull_request.run("dvc", "push", check=False)
    assert result.returncode != 0
    assert "failed to push data to the cloud" in result.stderr
    assert "AccessDenied" in result.stderr


def test_sync_lock_restores_the_pr_from_the_pr_remote_s_run_cache(
    pull_request: RoleRepo, tmp_path: Path
) -> None:
    # The author's checkout: the parameter change, main's lock (CI's commit not pulled).
    author = pull_request.clone(tmp_path / "author", role="pr", ref="HEAD~1")
    synced = author.make("sync-lock").stdout
    assert "Stage 'scale' is cached - skipping run" in synced, synced
    assert "Running stage" not in synced
    assert author.md5("dvc.lock") == pull_request.md5("dvc.lock")
    assert author.md5("scaled.csv") == pull_request.md5("scaled.csv")


def test_release_repro_takes_the_pr_s_outputs_not_its_run_cache(
    pull_request: RoleRepo, s3: S3Endpoint, tmp_path: Path
) -> None:
    pr_runs = objects(s3, "pr/runs") - objects(s3, "runs")
    merged = pull_request.clone(tmp_path / "merged", role="release")
    released = merged.make("release-repro").stdout
    assert "Running stage" not in released, released
    assert merged.md5("scaled.csv") == pull_request.md5("scaled.csv")
    output = md5_key((merged.path / "scaled.csv").read_bytes())
    assert f"files/md5/{output}" in objects(s3, ""), "rollbacks would not find the output"
    assert pr_runs, "the pull request pushed no run-cache entry of its own"
    assert not pr_runs & objects(s3, "runs"), "a pull request's run-cache reached main's"


def test_verify_fails_a_pull_of_a_tampered_object(
    main: RoleRepo, s3: S3Endpoint, tmp_path: Path
) -> None:
    writer = main.clone(tmp_path / "writer", role="pr")
    writer.run("python", "-m", "scripts.storage", "pr-remote")
    (writer.path / "weights.bin").write_bytes(b"the weights CI trained")
    writer.run("dvc", "add", "-q", "weights.bin")
    writer.run("dvc", "push", "-r", "pr", "weights.bin.dvc")
    writer.run("git", "add", "-A")
    writer.run("git", "commit", "-q", "-m", "Weights")
    key = f"{BUCKET}/{PREFIX}/pr/files/md5/{md5_key(b'the weights CI trained')}"
    bucket(s3, "admin").pipe(key, b"someone else's weights")

    reader = writer.clone(tmp_path / "reader", role="release")
    reader.run("python", "-m", "scripts.storage", "pr-remote")
    pulled = reader.run("dvc", "pull", "-r", "pr", "weights.bin.dvc", check=False)
    # DVC hashes what it fetched, drops what does not match, and the checkout finds it missing.
    assert pulled.returncode != 0
    assert "Checkout failed for following targets:\nweights.bin" in pulled.stderr
    assert not (reader.path / "weights.bin").exists()
    # What verification caught: without it, the tampered bytes land in the workspace.
    reader.run("dvc", "remote", "modify", "--local", "pr", "verify", "false")
    reader.run("dvc", "pull", "-r", "pr", "weights.bin.dvc")
    assert (reader.path / "weights.bin").read_bytes() == b"someone else's weights"
