"""A real S3-compatible endpoint on loopback: moto's standalone server (``make s3-server-env``).

The tests, the act sandbox and the restore benchmark store DVC data and prediction logs in
it, through the same ``dvc-s3``/``s3fs`` code a team's bucket is reached with. moto lives in
its own environment (``.venv-s3``, pinned in ``requirements/s3-server.txt``) because its
botocore pins differ from the project's.

``python -m scripts.dev.s3 [--port N] [--bucket NAME]`` serves until interrupted and prints
the variables to point DVC and s3fs at it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.cd.processes import free_port
from scripts.dev.workspace import PROJECT_ROOT

# Where `make s3-server-env` installs moto; GITOPS_ML_S3_SERVER overrides the executable.
DEFAULT_SERVER = PROJECT_ROOT / ".venv-s3" / "bin" / "moto_server"
START_TIMEOUT_S = 30.0
# moto accepts any credentials; these only have to be set (botocore refuses to sign without).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "gitops-ml-test",
    "AWS_SECRET_ACCESS_KEY": "gitops-ml-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3ServerError(RuntimeError):
    """The S3 server could not be found or started."""


@dataclass(frozen=True)
class S3Endpoint:
    """A running endpoint: its URL and the bucket created in it."""

    url: str
    bucket: str

    def env(self) -> dict[str, str]:
        """Variables that point botocore (DVC's S3 remote, s3fs) at this endpoint."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

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


@contextlib.contextmanager
def s3_server(bucket: str = "gitops-ml", port: int | None = None) -> Iterator[S3Endpoint]:
    """Start moto's server on 127.0.0.1 with one bucket; stop it (and its children) after.

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
            yield S3Endpoint(url, bucket)
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
    args = parser.parse_args(argv)
    try:
        with s3_server(args.bucket, args.port) as endpoint:
            for key, value in endpoint.env().items():
                print(f"export {key}={value}")
            print(f"# dvc remote add -d shared {endpoint.remote_url()}")
            print(f"# dvc remote modify shared endpointurl {endpoint.url}")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except S3ServerError as error:
        print(f"s3: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
