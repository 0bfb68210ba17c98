"""Deploy a Bento archive to an environment: ``python -m scripts.deploy apply|status|url|down``.

This is the interface the release workflow calls (``make deploy DEPLOY_ENV=... BENTO_FILE=...``,
``make smoke DEPLOY_ENV=...``). The driver here is the local one: the Bento is imported into
the environment's own BentoML store and served by ``bentoml serve`` on a loopback port,
detached from the caller, with its PID, state and logs under one run directory
(``$GITOPS_ML_RUN_DIR/<env>``, default ``~/.local/state/gitops-ml/<env>``).

``apply`` is idempotent: the Bento already serving is left alone; another one replaces it
once the new server is ready.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.smoke import SmokeError, wait_ready

DEFAULT_PORTS = {"staging": 3100, "production": 3200}
STOP_TIMEOUT_S = 20.0


class DeployError(RuntimeError):
    """The deployment failed; the message says why and where the logs are."""


@dataclass(frozen=True)
class Deployment:
    """What runs for an environment (``state.json`` in its run directory)."""

    env: str
    tag: str
    url: str
    pid: int


def run_dir(env: str) -> Path:
    """The environment's run directory."""
    root = os.environ.get("GITOPS_ML_RUN_DIR") or Path.home() / ".local/state/gitops-ml"
    return Path(root) / env


def port_for(env: str) -> int:
    """``GITOPS_ML_<ENV>_PORT``, else the environment's default port."""
    value = os.environ.get(f"GITOPS_ML_{env.upper()}_PORT")
    if value:
        return int(value)
    if env not in DEFAULT_PORTS:
        raise DeployError(f"no port for environment {env!r}: set GITOPS_ML_{env.upper()}_PORT")
    return DEFAULT_PORTS[env]


def bento_tag(archive: Path) -> str:
    """``name:version`` from an archive written by ``scripts.build_bento`` (name-version.bento)."""
    name, sep, version = archive.name.removesuffix(".bento").rpartition("-")
    if archive.suffix != ".bento" or not sep or not name or not version:
        raise DeployError(f"{archive}: expected <name>-<version>.bento from `make bento`")
    return f"{name}:{version}"


def alive(pid: int) -> bool:
    """Whether a process with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current(env: str) -> Deployment | None:
    """The recorded deployment, if its process is alive."""
    path = run_dir(env) / "state.json"
    if not path.is_file():
        return None
    deployment = Deployment(**json.loads(path.read_text(encoding="utf-8")))
    return deployment if alive(deployment.pid) else None


def stop(pid: int) -> None:
    """Terminate a server's process group, then kill it if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


def apply(env: str, archive: Path) -> Deployment:
    """Serve ``archive`` for ``env`` (import, start, health-check, record)."""
    if not archive.is_file():
        raise DeployError(f"--bento-file {archive}: no such file (download the release artifact)")
    tag = bento_tag(archive)
    running = current(env)
    if running and running.tag == tag:
        print(f"deploy: {env} already serves {tag} at {running.url}")
        return running
    directory = run_dir(env)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    server_env = {
        **os.environ,
        "BENTOML_HOME": str(directory / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "GITOPS_ML_VARIANT": env,
        "GITOPS_ML_LOG_DIR": str(directory / "logs" / "predictions"),
    }
    listed = subprocess.run(
        ["bentoml", "get", tag], env=server_env, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        imported = subprocess.run(
            ["bentoml", "import", str(archive.resolve())],
            env=server_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if imported.returncode != 0:
            raise DeployError(f"bentoml import {archive} failed: {imported.stderr.strip()}")
    if running:
        print(f"deploy: stopping {running.tag} (pid {running.pid})")
        stop(running.pid)
    port = port_for(env)
    url = f"http://127.0.0.1:{port}"
    log = directory / "logs" / "server.log"
    with log.open("a", encoding="utf-8") as output:
        process = subprocess.Popen(
            ["bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            env=server_env,
            stdout=output,
            stderr=output,
            start_new_session=True,  # outlives the workflow step, like a service would
        )
    try:
        wait_ready(url)
    except SmokeError as error:
        stop(process.pid)
        raise DeployError(f"{tag} did not become ready: {error} (log: {log})") from error
    deployment = Deployment(env=env, tag=tag, url=url, pid=process.pid)
    (directory / "state.json").write_text(json.dumps(asdict(deployment)), encoding="utf-8")
    print(f"deploy: {env} serves {tag} at {url} (pid {process.pid}, log {log})")
    return deployment


def down(env: str) -> None:
    """Stop the environment's server and forget it."""
    running = current(env)
    if running:
        stop(running.pid)
        print(f"deploy: stopped {env} ({running.tag})")
    (run_dir(env) / "state.json").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Apply / status / url / down; exit 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__)
    parser.add_argument("command", choices=("apply", "status", "url", "down"))
    parser.add_argument("--env", required=True, help="staging, production, ...")
    parser.add_argument("--bento-file", type=Path, help="the Bento archive (apply)")
    args = parser.parse_args(argv)
    try:
        if args.command == "apply":
            if args.bento_file is None or not str(args.bento_file):
                raise DeployError("apply needs --bento-file (make bento writes dist/*.bento)")
            apply(args.env, args.bento_file)
        elif args.command == "down":
            down(args.env)
        else:
            running = current(args.env)
            if running is None:
                raise DeployError(
                    f"nothing is deployed to {args.env} (run dir {run_dir(args.env)})"
                )
            print(running.url if args.command == "url" else json.dumps(asdict(running)))
    except (DeployError, OSError, ValueError) as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
