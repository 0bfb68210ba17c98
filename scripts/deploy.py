"""Reconcile an environment to its state file: ``python -m scripts.deploy COMMAND --env ENV``.

The desired state is ``bentos/deployments/<env>.yaml`` (:mod:`scripts.deploy_state`). The
``local`` driver (the default: ``make demo``, the tests, a single-server deployment) runs,
for each variant, ``bentoml serve`` on a loopback port with ``GITOPS_ML_VARIANT`` set;
**nginx** in front (weighted ``split_clients``, sticky per ``X-User-Id`` or the request id,
failover of the challenger to the champion); **Prometheus** scraping every variant with a
``variant`` label. PIDs, generated configs, logs and the environment's BentoML store live
under ``$GITOPS_ML_RUN_DIR/<env>`` (default ``~/.local/state/gitops-ml/<env>``). The
``kubernetes`` driver renders manifests instead (:mod:`scripts.k8s`).

Commands:

* ``release --bento-file F``: import the Bento archive, update the state file as the
  environment's ``on_release`` says (replace, or add as challenger), then ``apply``;
* ``record --bento-file F``: only the state-file edit of ``release`` (no deployment);
* ``apply``: idempotent and ordered — start and health-check new variants, then shift
  traffic (nginx reload), then stop what was replaced or removed; a crashed variant is
  restarted;
* ``status`` (exit 1 when something is down), ``url [--service router|prometheus]``, ``down``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.deploy_state import (
    STATE_DIR,
    DeploymentState,
    StateError,
    load_state,
    released,
    save_state,
    state_path,
)
from scripts.smoke import SmokeError, free_port, wait_ready

STOP_TIMEOUT_S = 20.0
TOOLS = {"nginx": "nginx", "prometheus": "prometheus"}  # command -> Debian package


class DeployError(RuntimeError):
    """The deployment failed; the message says why and where the logs are."""


@dataclass
class Process:
    """A running variant."""

    name: str
    bento: str
    port: int
    pid: int


@dataclass
class Running:
    """What the local driver runs for an environment (``running.json``)."""

    env: str
    router_port: int
    prometheus_port: int
    variants: dict[str, Process] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    experiment_started: float | None = None
    nginx_pid: int | None = None
    prometheus_pid: int | None = None

    @property
    def url(self) -> str:
        """The router's base URL."""
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus's base URL."""
        return f"http://127.0.0.1:{self.prometheus_port}"


def run_dir(env: str) -> Path:
    """The environment's run directory."""
    root = os.environ.get("GITOPS_ML_RUN_DIR") or Path.home() / ".local/state/gitops-ml"
    return Path(root) / env


def bento_tag(archive: Path) -> str:
    """``name:version`` from an archive written by ``scripts.build_bento`` (name-version.bento).

    The Bento name (bentofile.yaml) has no ``-``; the version may.
    """
    name, sep, version = archive.name.removesuffix(".bento").partition("-")
    if archive.suffix != ".bento" or not sep or not name or not version:
        raise DeployError(f"{archive}: expected <name>-<version>.bento from `make bento`")
    return f"{name}:{version}"


def alive(pid: int | None) -> bool:
    """Whether a process with this PID exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(") ")[-1].startswith("Z"))


def stop(pid: int | None) -> None:
    """Terminate a process group, then kill it if it lingers."""
    if not alive(pid):
        return
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


def spawn(command: list[str], env: dict[str, str], log: Path) -> int:
    """Start a daemon in its own session, not as our child (no zombie, no Popen to reap).

    Returns:
        Its PID, which is also its process group id.
    """
    script = f"setsid {shlex.join(command)} >>{shlex.quote(str(log))} 2>&1 </dev/null & echo $!"
    started = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return int(started.stdout.strip())


def load_running(env: str) -> Running | None:
    """The recorded run of an environment, if any."""
    path = run_dir(env) / "running.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["variants"] = {name: Process(**p) for name, p in raw["variants"].items()}
    return Running(**raw)


def save_running(running: Running) -> None:
    """Record the run (atomically)."""
    path = run_dir(running.env) / "running.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(running), indent=2), encoding="utf-8")
    temporary.replace(path)


def require_tools() -> None:
    """Nginx and prometheus on PATH; installed with apt when root, else the command to run."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    packages = " ".join(TOOLS[tool] for tool in missing)
    command = f"apt-get update && apt-get install -y --no-install-recommends {packages}"
    if os.geteuid() != 0:
        raise DeployError(f"{', '.join(missing)} not found; install with: sudo {command}")
    print(f"deploy: installing {packages}")
    subprocess.run(["bash", "-c", command], check=True, capture_output=True)


def bentoml_command() -> str:
    """The ``bentoml`` of this interpreter's environment (PATH may not include it)."""
    local = Path(sys.executable).parent / "bentoml"
    return str(local) if local.is_file() else "bentoml"


def bentoml_env(env: str) -> dict[str, str]:
    """Environment for bentoml commands of this environment (its own store)."""
    return {
        **os.environ,
        "BENTOML_HOME": str(run_dir(env) / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }


def bentoml(env: str, *args: str) -> str:
    """``bentoml ARGS`` against the environment's store; its stdout.

    Raises:
        DeployError: With bentoml's message when it fails.
    """
    result = subprocess.run(
        [bentoml_command(), *args],
        env=bentoml_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"bentoml {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def known_bentos(env: str) -> set[str]:
    """Tags in the environment's BentoML store."""
    return {str(item["tag"]) for item in json.loads(bentoml(env, "list", "-o", "json") or "[]")}


def import_bento(env: str, archive: Path) -> str:
    """Import an archive into the environment's store (once); its tag."""
    if not archive.is_file():
        raise DeployError(f"--bento-file {archive}: no such file (download the release artifact)")
    tag = bento_tag(archive)
    if tag not in known_bentos(env):
        bentoml(env, "import", str(archive.resolve()))
    return tag


def start_variant(env: str, name: str, bento: str) -> Process:
    """``bentoml serve`` one variant on a free loopback port, detached; wait until ready."""
    directory = run_dir(env)
    port = free_port()
    log = directory / "logs" / f"{name}-{bento.replace(':', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Each server gets its own BENTOML_HOME sharing the environment's store: BentoML keeps
    # prometheus_client's multiprocess files there, and two servers sharing them report
    # each other's counters.
    store = directory / "bentoml"
    home = directory / "homes" / f"{name}-{port}"
    home.mkdir(parents=True, exist_ok=True)
    for kind in ("bentos", "models"):
        (store / kind).mkdir(parents=True, exist_ok=True)
        if not (home / kind).exists():
            (home / kind).symlink_to(store / kind)
    server_env = {
        **bentoml_env(env),
        "BENTOML_HOME": str(home),
        "GITOPS_ML_VARIANT": name,
        "GITOPS_ML_LOG_DIR": str(directory / "logs" / "predictions" / name),
    }
    # Detached: it outlives the caller (a workflow step), like a service would.
    pid = spawn(
        [bentoml_command(), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
        server_env,
        log,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
    except SmokeError as error:
        stop(pid)
        raise DeployError(f"{name} ({bento}) did not become ready: {error} (log: {log})") from error
    print(f"deploy: {env}/{name} serves {bento} on port {port} (pid {pid})")
    return Process(name=name, bento=bento, port=port, pid=pid)


def nginx_config(state: DeploymentState, running: Running, directory: Path) -> str:
    """nginx.conf: weighted, sticky split between the variants, challenger fails over."""
    header = "$http_" + state.routing.sticky_header.lower().replace("-", "_")
    variants = running.variants
    champion = variants["champion"]
    lines = [
        "# Generated by scripts/deploy.py from bentos/deployments/"
        f"{state.environment}.yaml — do not edit.",
        "worker_processes 1;",
        f"pid {directory}/nginx.pid;",
        f"error_log {directory}/error.log warn;",
        "events { worker_connections 1024; }",
        "http {",
        f"  access_log {directory}/access.log;",
        *(
            f"  {kind}_temp_path {directory}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "  client_body_buffer_size 1m;",
        f"  # Sticky key: {state.routing.sticky_header}, else the request id (random per request).",
        f'  map {header} $route_key {{ "" $request_id; default {header}; }}',
    ]
    challenger = state.challenger
    if challenger is not None and challenger.weight > 0 and "challenger" in variants:
        lines += [
            '  split_clients "${route_key}" $variant {',
            f"    {challenger.weight}% challenger;",
            "    * champion;",
            "  }",
        ]
    else:
        lines.append('  map $route_key $variant { default "champion"; }')
    lines.append("  upstream champion {")
    lines.append(f"    server 127.0.0.1:{champion.port} max_fails=0;")
    lines.append("  }")
    if "challenger" in variants:
        lines += [
            "  upstream challenger {",
            f"    server 127.0.0.1:{variants['challenger'].port} max_fails=1 fail_timeout=5s;",
            f"    server 127.0.0.1:{champion.port} backup;",
            "  }",
        ]
    lines += [
        "  server {",
        f"    listen 127.0.0.1:{running.router_port};",
        "    location / {",
        "      proxy_pass http://$variant;",
        "      proxy_set_header X-Request-Id $request_id;",
        "      proxy_next_upstream error timeout http_502 http_503;",
        "      proxy_connect_timeout 2s;",
        "      add_header X-Model-Variant-Assigned $variant always;",
        "    }",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def prometheus_config(state: DeploymentState, running: Running) -> str:
    """prometheus.yml: every variant's /metrics with variant and environment labels."""
    interval = os.environ.get("GITOPS_ML_SCRAPE_INTERVAL", "15s")
    targets = [
        {
            "targets": [f"127.0.0.1:{process.port}"],
            "labels": {
                "variant": name,
                "environment": state.environment,
                "bento": process.bento,
            },
        }
        for name, process in sorted(running.variants.items())
    ]
    document = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "credit-risk",
                "metrics_path": "/metrics",
                # The service labels its own series with `variant`; keep them.
                "honor_labels": True,
                "static_configs": targets,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"  # JSON is YAML


def start_or_reload_nginx(running: Running, config: str, directory: Path) -> int:
    """Validate the config, then start nginx or reload it in place."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "tmp" / kind).mkdir(parents=True, exist_ok=True)
        (directory / "tmp" / kind).chmod(0o1777)  # workers may run as another user
    path = directory / "nginx.conf"
    candidate = directory / "nginx.conf.new"
    candidate.write_text(config, encoding="utf-8")
    base = ["nginx", "-p", str(directory), "-c", str(candidate)]
    checked = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise DeployError(f"generated nginx config rejected: {checked.stderr.strip()}")
    candidate.replace(path)
    base[-1] = str(path)
    if alive(running.nginx_pid):
        subprocess.run([*base, "-s", "reload"], check=True, capture_output=True)
        assert running.nginx_pid is not None
        return running.nginx_pid
    (directory / "nginx.pid").unlink(missing_ok=True)
    subprocess.run(base, check=True, capture_output=True, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (directory / "nginx.pid").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    return int((directory / "nginx.pid").read_text().strip())


def start_or_reload_prometheus(running: Running, config: str, directory: Path) -> int:
    """Write the config; start Prometheus or ask it to reload."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prometheus.yml").write_text(config, encoding="utf-8")
    if alive(running.prometheus_pid):
        request = urllib.request.Request(f"{running.prometheus_url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        assert running.prometheus_pid is not None
        return running.prometheus_pid
    pid = spawn(
        [
            "prometheus",
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{running.prometheus_port}",
            "--web.enable-lifecycle",
        ],
        dict(os.environ),
        directory / "prometheus.log",
    )
    wait_ready(running.prometheus_url, path="/-/ready")
    return pid


def wait_scraped(running: Running, timeout: float = 30.0) -> None:
    """Wait until Prometheus scrapes every variant (new targets take ~5 s to be picked up)."""
    wanted = {f"127.0.0.1:{process.port}" for process in running.variants.values()}
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{running.prometheus_url}/api/v1/targets", timeout=5) as r:
                targets = json.loads(r.read())["data"]["activeTargets"]
            up = {t["labels"].get("instance") for t in targets if t.get("health") == "up"}
            if wanted <= up:
                return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise DeployError(
                f"Prometheus {running.prometheus_url} does not scrape {sorted(wanted)} after "
                f"{timeout:.0f} s (log: {run_dir(running.env) / 'prometheus' / 'prometheus.log'})"
            )
        time.sleep(0.5)


def env_port(env: str, suffix: str) -> int | None:
    """``GITOPS_ML_<ENV>_<SUFFIX>`` as a port, if set (tests pick free ports this way)."""
    value = os.environ.get(f"GITOPS_ML_{env.upper()}_{suffix}")
    return int(value) if value else None


def apply(state: DeploymentState) -> Running:
    """Reconcile the local processes to ``state`` (see the module docstring)."""
    env = state.environment
    if state.champion is None:
        raise DeployError(f"{env}: the state has no variants yet (release a Bento first)")
    require_tools()
    known = known_bentos(env)
    for index, variant in enumerate(state.variants):
        if variant.bento not in known:
            raise DeployError(
                f"{env} state: variants.{index}.bento: {variant.bento} is not in the "
                f"{env} BentoML store ({run_dir(env) / 'bentoml'}); release its archive with "
                f"--bento-file (known: {sorted(known) or 'none'})"
            )
    directory = run_dir(env)
    directory.mkdir(parents=True, exist_ok=True)
    previous = load_running(env)
    running = Running(
        env=env,
        router_port=env_port(env, "PORT") or state.routing.port,
        prometheus_port=env_port(env, "PROMETHEUS_PORT")
        or (previous.prometheus_port if previous else free_port()),
        nginx_pid=previous.nginx_pid if previous else None,
        prometheus_pid=previous.prometheus_pid if previous else None,
    )
    old = previous.variants if previous else {}
    replaced: list[Process] = []
    # 1. Start (and health-check) every variant that is new, changed or crashed.
    for variant in state.variants:
        current = old.get(variant.name)
        if current and current.bento == variant.bento and alive(current.pid):
            running.variants[variant.name] = current
            continue
        if current:
            replaced.append(current)
        running.variants[variant.name] = start_variant(env, variant.name, variant.bento)
    replaced += [process for name, process in old.items() if state.variant(name) is None]
    running.weights = {variant.name: variant.weight for variant in state.variants}
    # 2. Shift traffic.
    running.nginx_pid = start_or_reload_nginx(
        running, nginx_config(state, running, directory / "nginx"), directory / "nginx"
    )
    running.prometheus_pid = start_or_reload_prometheus(
        running, prometheus_config(state, running), directory / "prometheus"
    )
    wait_ready(running.url)
    wait_scraped(running)
    # 3. Stop what no longer serves.
    for process in replaced:
        stop(process.pid)
        print(f"deploy: {env}/{process.name} stopped {process.bento} (pid {process.pid})")
    challenger = state.challenger
    if challenger is None:
        running.experiment_started = None
    elif previous and previous.experiment_started and _same_challenger(previous, challenger.bento):
        running.experiment_started = previous.experiment_started
    else:
        running.experiment_started = time.time()
    save_running(running)
    weights = ", ".join(f"{name} {weight}%" for name, weight in running.weights.items())
    print(f"deploy: {env} at {running.url} ({weights}); Prometheus {running.prometheus_url}")
    return running


def _same_challenger(previous: Running, bento: str) -> bool:
    process = previous.variants.get("challenger")
    return process is not None and process.bento == bento


def status(env: str) -> dict[str, Any]:
    """Health of everything the environment runs."""
    running = load_running(env)
    if running is None:
        raise DeployError(f"nothing is deployed to {env} (run dir {run_dir(env)})")
    report: dict[str, Any] = {
        "environment": env,
        "url": running.url,
        "prometheus": running.prometheus_url,
        "experiment_started": running.experiment_started,
        "variants": {
            name: {
                **asdict(process),
                "weight": running.weights.get(name),
                "alive": alive(process.pid),
            }
            for name, process in running.variants.items()
        },
        "nginx": {"pid": running.nginx_pid, "alive": alive(running.nginx_pid)},
        "prometheus_process": {
            "pid": running.prometheus_pid,
            "alive": alive(running.prometheus_pid),
        },
    }
    report["healthy"] = all(item["alive"] for item in report["variants"].values()) and (
        report["nginx"]["alive"] and report["prometheus_process"]["alive"]
    )
    return report


def down(env: str) -> None:
    """Stop everything the environment runs and forget it."""
    running = load_running(env)
    if running is None:
        return
    for process in running.variants.values():
        stop(process.pid)
    stop(running.prometheus_pid)
    if alive(running.nginx_pid):
        assert running.nginx_pid is not None
        os.kill(running.nginx_pid, signal.SIGQUIT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(running.nginx_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    (run_dir(env) / "running.json").unlink()
    print(f"deploy: {env} stopped")


def record(state: DeploymentState, tag: str, state_dir: Path) -> DeploymentState:
    """Write what a release of ``tag`` does to the environment's state file."""
    path = state_path(state.environment, state_dir)
    updated = released(state, tag)
    if updated != state:
        save_state(updated, path)
        variants = ", ".join(f"{v.name}={v.bento} ({v.weight}%)" for v in updated.variants)
        print(f"deploy: {path}: {variants}")
    return updated


def apply_kubernetes(state: DeploymentState, state_dir: Path) -> None:
    """``kubectl apply`` the rendered manifests when a cluster is configured; else say who does."""
    directory = state_dir / "k8s" / state.environment
    if not directory.is_dir():
        raise DeployError(f"{directory}: not rendered; run `python -m scripts.k8s render`")
    data = os.environ.get("KUBECONFIG_DATA")  # the KUBECONFIG secret's content, in CI
    if data and not os.environ.get("KUBECONFIG"):
        config = run_dir(state.environment) / "kubeconfig"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.touch(mode=0o600)
        config.write_text(data, encoding="utf-8")
        os.environ["KUBECONFIG"] = str(config)
    if not (shutil.which("kubectl") and os.environ.get("KUBECONFIG")):
        print(
            f"deploy: {state.environment} uses the kubernetes driver and no KUBECONFIG is set: "
            f"Argo CD / Flux sync {directory} from main"
        )
        return
    subprocess.run(["kubectl", "apply", "-f", str(directory)], check=True)


def reconcile(state: DeploymentState, state_dir: Path) -> None:
    """Apply the state with its driver."""
    if state.driver == "kubernetes":
        apply_kubernetes(state, state_dir)
    else:
        apply(state)


def release(env: str, archive: Path, state_dir: Path) -> None:
    """Import the archive, record it in the state file as ``on_release`` says, apply."""
    state = load_state(state_path(env, state_dir))
    tag = import_bento(env, archive) if state.driver == "local" else bento_tag(archive)
    reconcile(record(state, tag, state_dir), state_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__)
    parser.add_argument("command", choices=("release", "record", "apply", "status", "url", "down"))
    parser.add_argument("--env", required=True, help="staging, production, ...")
    parser.add_argument("--bento-file", type=Path, help="the Bento archive (release)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--service", choices=("router", "prometheus"), default="router")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            if args.bento_file is None or not str(args.bento_file).strip():
                raise DeployError("release needs --bento-file (make bento writes dist/*.bento)")
            release(args.env, args.bento_file, args.state_dir)
        elif args.command == "record":
            if args.bento_file is None or not str(args.bento_file).strip():
                raise DeployError("record needs --bento-file")
            state = load_state(state_path(args.env, args.state_dir))
            record(state, bento_tag(args.bento_file), args.state_dir)
        elif args.command == "apply":
            reconcile(load_state(state_path(args.env, args.state_dir)), args.state_dir)
        elif args.command == "down":
            down(args.env)
        elif args.command == "status":
            report = status(args.env)
            print(json.dumps(report, indent=2))
            return 0 if report["healthy"] else 1
        else:
            running = load_running(args.env)
            if running is None:
                raise DeployError(
                    f"nothing is deployed to {args.env} (run dir {run_dir(args.env)})"
                )
            print(running.url if args.service == "router" else running.prometheus_url)
    except (DeployError, StateError, OSError, ValueError, subprocess.CalledProcessError) as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
