"""A real S3-compatible endpoint on loopback: moto's standalone server (``make s3-server-env``).

The tests, the act sandbox and the restore benchmark store DVC data and prediction logs in
it, through the same ``dvc-s3``/``s3fs`` code a team's bucket is reached with. moto lives in
its own environment (``.venv-s3``, pinned in ``requirements/s3-server.txt``) because its
botocore pins differ from the project's.

With ``iam=True`` the server enforces IAM, as a team's bucket does: the endpoint's own keys
are an administrator's, and :meth:`S3Endpoint.role_keys` gives the keys of a user holding
one of the storage roles' policies (``docs/iam/storage-<role>.json``, docs/storage-trust.md,
which also lists what moto's enforcement leaves out).

``python -m scripts.dev.s3 [--port N] [--bucket NAME] [--iam]`` serves until interrupted and
prints the variables to point DVC and s3fs at it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.cd.processes import free_port
from scripts.dev.workspace import PROJECT_ROOT

# Where `make s3-server-env` installs moto; GITOPS_ML_S3_SERVER overrides the executable.
DEFAULT_SERVER = PROJECT_ROOT / ".venv-s3" / "bin" / "moto_server"
START_TIMEOUT_S = 30.0
REGION = "us-east-1"
# Without IAM, moto accepts any credentials; these only have to be set (botocore refuses to
# sign without). With IAM they sign the setup requests made before enforcement starts.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "gitops-ml-test",
    "AWS_SECRET_ACCESS_KEY": "gitops-ml-test-secret",
    "AWS_DEFAULT_REGION": REGION,
}
# The storage roles' policies, with ${BUCKET} and ${PREFIX} to fill in.
POLICIES = PROJECT_ROOT / "docs" / "iam"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class S3ServerError(RuntimeError):
    """The S3 server could not be found or started."""


@dataclass(frozen=True)
class S3Endpoint:
    """A running endpoint: its URL, the bucket created in it, and the keys :meth:`env` gives.

    With ``iam`` the server enforces IAM: the keys are an administrator's (policy ``*``),
    and :meth:`role_keys` creates the storage roles' users.
    """

    url: str
    bucket: str
    access_key_id: str = CREDENTIALS["AWS_ACCESS_KEY_ID"]
    secret_access_key: str = field(default=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], repr=False)
    iam: bool = False
    # (role, prefix) -> that user's keys: each user is created once.
    _users: dict[tuple[str, str], dict[str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def env(self) -> dict[str, str]:
        """Variables that point botocore (DVC's S3 remote, s3fs) at this endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
        }

    def role_keys(self, role: str, prefix: str) -> dict[str, str]:
        """Keys of an IAM user holding ``docs/iam/storage-<role>.json`` for this bucket.

        The user is created on the first call for ``role`` and ``prefix``; later calls
        return the same keys.

        Args:
            role: A storage role: ``pr``, ``release`` or ``deploy``.
            prefix: The DVC remote's key prefix in the bucket, e.g. ``dvc-team``.

        Returns:
            ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``.

        Raises:
            S3ServerError: When the server does not enforce IAM, the role has no policy
                file, or moto refuses to create the user.
        """
        if not self.iam:
            raise S3ServerError(
                f"storage role {role!r}: {self.url} does not enforce IAM, so any key may do "
                "anything there; start it with s3_server(iam=True)"
            )
        policy = role_policy(role, self.bucket, prefix)
        admin = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        with self._lock:
            if (role, prefix) not in self._users:
                self._users[role, prefix] = create_user(
                    self.url, admin, user_name(role, prefix), policy
                )
            return dict(self._users[role, prefix])

    def remote_url(self, prefix: str = "dvc") -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{prefix}"

    def configure_dvc(self, checkout: Path, name: str = "shared", prefix: str = "dvc") -> None:
        """Make this endpoint the default DVC remote of ``checkout`` (``.dvc/config``)."""

        def dvc(*args: str) -> None:
            subprocess.run(
                [sys.executable, "-m", "dvc", *args],
                cwd=checkout,
                check=True,
                capture_output=True,
                text=True,
            )

        dvc("remote", "add", "--force", "--default", name, self.remote_url(prefix))
        dvc("remote", "modify", name, "endpointurl", self.url)


def server_executable() -> Path:
    """moto_server's path.

    Raises:
        S3ServerError: When it is not installed.
    """
    path = Path(os.environ.get("GITOPS_ML_S3_SERVER") or DEFAULT_SERVER)
    if not path.is_file():
        raise S3ServerError(
            f"moto_server not found at {path}: run `make s3-server-env` "
            "(or set GITOPS_ML_S3_SERVER to an S3-compatible server's executable)"
        )
    return path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def create_bucket(url: str, bucket: str) -> None:
    """``PUT /bucket``: S3's CreateBucket (moto does not check signatures)."""
    request = urllib.request.Request(f"{url}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10.0) as response:
        if response.status != 200:
            raise S3ServerError(f"creating bucket {bucket}: HTTP {response.status}")


def role_policy(role: str, bucket: str, prefix: str) -> str:
    """``docs/iam/storage-<role>.json`` for ``bucket`` and ``prefix``, as JSON text.

    Raises:
        S3ServerError: When the role has no policy file, or the prefix is empty.
    """
    path = POLICIES / f"storage-{role}.json"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("storage-") for p in POLICIES.glob("storage-*.json"))
        raise S3ServerError(f"storage role {role!r}: no policy {path} (roles: {known})")
    prefix = prefix.strip("/")
    if not prefix:
        raise S3ServerError(f"storage role {role!r}: expected a key prefix, got an empty one")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("${BUCKET}", bucket).replace("${PREFIX}", prefix)
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value

    return json.dumps(fill(json.loads(path.read_text(encoding="utf-8"))))


def user_name(role: str, prefix: str) -> str:
    """The IAM user of ``role`` for ``prefix`` (IAM's user-name characters, 64 at most)."""
    return re.sub(r"[^\w+=,.@-]", "-", f"storage-{role}-{prefix.strip('/')}")[:64]


def create_user(url: str, keys: Mapping[str, str], name: str, policy: str) -> dict[str, str]:
    """Create IAM user ``name`` with the inline ``policy`` (signed with ``keys``); its keys.

    Raises:
        S3ServerError: With the IAM API's answer when a call is refused.
    """
    import botocore.exceptions  # type: ignore[import-untyped]  # botocore ships no types
    import botocore.session  # type: ignore[import-untyped]  # botocore ships no types

    iam = botocore.session.Session().create_client(
        "iam",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=policy)
        key = iam.create_access_key(UserName=name)["AccessKey"]
    except botocore.exceptions.ClientError as error:
        raise S3ServerError(f"IAM user {name} at {url}: {error}") from error
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def enforce_iam(url: str) -> dict[str, str]:
    """Create an administrator (policy ``*``), then make moto enforce IAM; the admin's keys.

    ``POST /moto-api/reset-auth 0``: from the next request on, every request must be signed
    by a known user's key and be allowed by that user's policies.
    """
    admin = create_user(url, CREDENTIALS, "storage-admin", json.dumps(ADMIN_POLICY))
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=b"0",
        # Not a form (urllib's default type): moto reads the raw body as a number.
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10.0):
            pass
    except urllib.error.HTTPError as error:
        raise S3ServerError(f"turning IAM enforcement on at {url}: HTTP {error.code}") from error
    return admin


@contextlib.contextmanager
def s3_server(
    bucket: str = "gitops-ml", port: int | None = None, iam: bool = False
) -> Iterator[S3Endpoint]:
    """Start moto's server on 127.0.0.1 with one bucket; stop it (and its children) after.

    Args:
        bucket: The bucket to create.
        port: Where to listen (default: a free port).
        iam: Enforce IAM (:func:`enforce_iam`): the endpoint's keys are an administrator's,
            :meth:`S3Endpoint.role_keys` those of the storage roles.

    Raises:
        S3ServerError: When the server is missing or does not answer in time.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    # The server logs every request: to a file, never to a pipe nobody reads (a full pipe
    # blocks its logging, and with it every request).
    with tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log") as log:
        process = subprocess.Popen(
            [str(server_executable()), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Enforcement starts when asked (enforce_iam), never from the inherited setting.
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf"},
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(url):
                if process.poll() is not None:
                    tail = Path(log.name).read_text(errors="replace")[-500:]
                    raise S3ServerError(f"moto_server exited {process.returncode}: {tail}")
                if time.monotonic() > deadline:
                    raise S3ServerError(
                        f"moto_server did not answer on {url} in {START_TIMEOUT_S}s"
                    )
                time.sleep(0.1)
            create_bucket(url, bucket)
            if not iam:
                yield S3Endpoint(url, bucket)
            else:
                admin = enforce_iam(url)
                yield S3Endpoint(
                    url,
                    bucket,
                    admin["AWS_ACCESS_KEY_ID"],
                    admin["AWS_SECRET_ACCESS_KEY"],
                    iam=True,
                )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve an S3 endpoint until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.s3", description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", default="gitops-ml")
    parser.add_argument("--iam", action="store_true", help="enforce IAM (docs/iam/)")
    args = parser.parse_args(argv)
    # SIGTERM's default action would end this process without stopping the server (it runs
    # in a session of its own): it interrupts, as SIGINT does, and the server is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with s3_server(args.bucket, args.port, iam=args.iam) as endpoint:
            for key, value in endpoint.env().items():
                print(f"export {key}={value}")
            print(f"# dvc remote add -d shared {endpoint.remote_url()}")
            print(f"# dvc remote modify shared endpointurl {endpoint.url}")
            if args.iam:
                for role in ("pr", "release", "deploy"):
                    keys = endpoint.role_keys(role, "dvc")
                    print(f"# {role} role: " + " ".join(f"{k}={v}" for k, v in keys.items()))
            signal.pause()
    except KeyboardInterrupt:
        return 0
    except S3ServerError as error:
        print(f"s3: {error}", file=sys.stderr)
        return 2
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
