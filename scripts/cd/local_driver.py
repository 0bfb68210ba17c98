"""The ``local`` driver: one host runs an environment (``make demo``, the tests, one server).

For each variant, ``bentoml serve`` on a loopback port with ``GITOPS_ML_VARIANT`` set;
nginx in front (:mod:`scripts.cd.nginx`); Prometheus scraping every variant and evaluating
the alert rules (:mod:`scripts.cd.prometheus`); the Pushgateway, Alertmanager and
retraining relay (:mod:`scripts.cd.alerting`) — all of them programs of the environment's
supervisord (:mod:`scripts.cd.supervisor`), which outlives the job that deployed them,
restarts what crashes, and stops a variant's whole process tree. Configs, logs and the environment's
BentoML store live under its run directory (:class:`scripts.cd.runtime.DriverSettings`).

:func:`apply` is idempotent and ordered — start and health-check new variants, then shift
traffic (nginx reload), then stop what was replaced or removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scripts.cd import alerting, archive, interpreters, nginx, prometheus
from scripts.cd.bento_store import import_bento, known_bentos
from scripts.cd.checks import wait_ready
from scripts.cd.errors import DeployError, SmokeError
from scripts.cd.processes import free_port, port_owner
from scripts.cd.runtime import DriverSettings, Process, Running, load_running, save_running
from scripts.cd.state import DeploymentState, StateError, load_state, save_state
from scripts.cd.supervisor import Program, Supervisor, service_env

TOOLS = {  # command -> Debian package
    "nginx": "nginx",
    "prometheus": "prometheus",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


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


def store(settings: DriverSettings, env: str) -> Path:
    """The environment's BentoML store."""
    return settings.run_dir(env) / "bentoml"


# Program states in which supervisord keeps a variant going (it restarts a crashed one).
LIVE = {"RUNNING", "STARTING", "BACKOFF"}


def supervisor(settings: DriverSettings, env: str) -> Supervisor:
    """The environment's supervisord."""
    return Supervisor(settings.run_dir(env))


def program_name(name: str, port: int) -> str:
    """A variant's program: one per (variant, port), so a replacement starts beside it."""
    return f"variant-{name}-{port}"


def served_pid(reaper_pid: int, timeout: float = 10.0) -> int:
    """The ``bentoml serve`` process the variant's reaper runs (its one child)."""
    from scripts.cd.reaper import children

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(reaper_pid)
        if found:
            return found[0]
        time.sleep(0.05)
    return reaper_pid


def start_variant(settings: DriverSettings, env: str, name: str, bento: str) -> Process:
    """``bentoml serve`` one variant on a free loopback port, supervised; wait until ready."""
    directory = settings.run_dir(env)
    port = free_port()
    log = directory / "logs" / f"{name}-{bento.replace(':', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Each server gets its own BENTOML_HOME sharing the environment's store: BentoML keeps
    # prometheus_client's multiprocess files there, and two servers sharing them report
    # each other's counters.
    shared = store(settings, env)
    home = directory / "homes" / f"{name}-{port}"
    home.mkdir(parents=True, exist_ok=True)
    for kind in ("bentos", "models"):
        (shared / kind).mkdir(parents=True, exist_ok=True)
        if not (home / kind).exists():
            (home / kind).symlink_to(shared / kind)
    server_env = service_env(
        os.environ,
        {
            "BENTOML_HOME": str(home),
            "BENTOML_DO_NOT_TRACK": "true",
            "GITOPS_ML_VARIANT": name,
            "GITOPS_ML_LOG_DIR": str(directory / "logs" / "predictions" / name),
        },
    )
    supervised = supervisor(settings, env)
    program = program_name(name, port)
    reaper = supervised.install_reaper()
    # The Bento's own packages, never the venv jobs install into (scripts/cd/interpreters.py).
    interpreter = interpreters.for_bento(settings.run_root, shared, bento)
    serve = [
        str(interpreter / "bentoml"),
        "serve",
        bento,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    command = [str(interpreter / "python"), str(reaper), "--", *serve]
    supervised.add(Program(program, command, server_env, log))
    try:
        wait_ready(f"http://127.0.0.1:{port}")
    except SmokeError as error:
        supervised.remove(program)
        raise DeployError(f"{name} ({bento}) did not become ready: {error} (log: {log})") from error
    pid = served_pid(supervised.wait_running(program))
    print(f"deploy: {env}/{name} serves {bento} on port {port} (pid {pid}, {program})")
    return Process(name=name, bento=bento, port=port, pid=pid)


def check_bentos(settings: DriverSettings, state: DeploymentState) -> None:
    """Every Bento the state names is in the environment's store.

    Raises:
        DeployError: Naming the variant, its Bento and what the store has.
    """
    env = state.environment
    known = known_bentos(store(settings, env))
    for index, variant in enumerate(state.variants):
        if variant.bento in known:
            continue
        # A fresh runner, or a rollback to an old champion: the shared storage has it.
        try:
            fetched = archive.fetch(variant.bento)
        except DeployError as error:
            raise DeployError(
                f"{env} state: variants.{index}.bento: {variant.bento} is not in the "
                f"{env} BentoML store ({store(settings, env)}) — {error}; release its "
                f"archive with --bento-file (known: {sorted(known) or 'none'})"
            ) from None
        import_bento(store(settings, env), fetched)
        print(f"deploy: {env}: fetched {variant.bento} from the shared storage")


def check_environment_outlives_the_job(settings: DriverSettings) -> None:
    """On a runner, what the services run from must not live in the job's checkout.

    The next job's checkout empties the work tree (``git clean -ffdx``), so a run directory
    inside it (configs, stores, the services' interpreters) would vanish under the running
    services. They never run from the job's venv (:mod:`scripts.cd.interpreters`).

    Raises:
        DeployError: Naming the run directory and the setting to use.
    """
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if os.environ.get("GITHUB_ACTIONS") != "true" or not workspace:
        return
    if settings.run_root.resolve().is_relative_to(Path(workspace).resolve()):
        raise DeployError(
            f"the services would run from {settings.run_root}, inside the job's checkout, "
            "which the next job deletes: set GITOPS_ML_RUN_DIR outside it (default "
            "~/.local/state/gitops-ml)"
        )


def apply(settings: DriverSettings, state: DeploymentState) -> Running:
    """Reconcile the local processes to ``state`` (see the module docstring)."""
    env = state.environment
    check_environment_outlives_the_job(settings)
    if state.champion is None:
        raise DeployError(f"{env}: the state has no variants yet (release a Bento first)")
    require_tools()
    check_bentos(settings, state)
    directory = settings.run_dir(env)
    directory.mkdir(parents=True, exist_ok=True)
    previous = load_running(directory)
    running = Running(
        env=env,
        router_port=settings.port(env, "PORT") or state.routing.port,
        prometheus_port=kept_port(settings, env, "PROMETHEUS_PORT", previous, "prometheus"),
        nginx_pid=previous.nginx_pid if previous else None,
        prometheus_pid=previous.prometheus_pid if previous else None,
    )
    old = previous.variants if previous else {}
    replaced: list[Process] = []
    # 1. Start (and health-check) every variant that is new, changed, or that supervisord
    #    gave up restarting.
    states = supervisor(settings, env).states()
    for variant in state.variants:
        current = old.get(variant.name)
        program = program_name(current.name, current.port) if current else ""
        if current and current.bento == variant.bento and states.get(program, ("",))[0] in LIVE:
            running.variants[variant.name] = current
            continue
        if current:
            replaced.append(current)
        running.variants[variant.name] = start_variant(settings, env, variant.name, variant.bento)
    replaced += [process for name, process in old.items() if state.variant(name) is None]
    running.weights = {variant.name: variant.weight for variant in state.variants}
    # 2. Shift traffic.
    ports = {name: process.port for name, process in running.variants.items()}
    supervised = supervisor(settings, env)
    running.nginx_pid = nginx.start_or_reload(
        supervised,
        nginx.render(state, ports, running.router_port, directory / "nginx"),
        directory / "nginx",
    )
    # Chosen now, just before their services bind them: a free port picked at the start
    # of apply can be taken (a variant's port, a client socket) while the variants start.
    alerting_ports = alerting.Ports(
        kept_port(settings, env, "PUSHGATEWAY_PORT", previous, "pushgateway"),
        kept_port(settings, env, "ALERTMANAGER_PORT", previous, "alertmanager"),
        kept_port(settings, env, "RELAY_PORT", previous, "relay"),
    )
    running.pushgateway_port = alerting_ports.pushgateway
    running.alertmanager_port = alerting_ports.alertmanager
    running.relay_port = alerting_ports.relay
    alerting.start(
        supervised,
        directory / "alerting",
        alerting_ports,
        settings.relay,
        env,
        settings.alert_group_wait,
    )
    if settings.relay is None:
        print(
            f"deploy: {env}: retrain alerts stay in Alertmanager {running.alertmanager_url} "
            "(no GITOPS_ML_DISPATCH_TOKEN_FILE on this runner: README, 'Alert-triggered "
            "retraining')"
        )
    targets = {name: (process.port, process.bento) for name, process in running.variants.items()}
    running.prometheus_pid = prometheus.start_or_reload(
        supervised,
        running.prometheus_port,
        prometheus.render(
            env,
            targets,
            settings.scrape_interval,
            running.pushgateway_port,
            running.alertmanager_port,
            running.relay_port if settings.relay else None,
        ),
        directory / "prometheus",
        alerting.render_rules(alert_for=settings.alert_for),
    )
    try:
        wait_ready(running.url)
    except SmokeError as error:
        owner = port_owner(running.router_port)
        raise DeployError(f"{env}: the router is not ready: {error} (port {owner})") from None
    # The answer must come from this environment's own router (another program may hold
    # the port): nginx names the environment and the state it serves in a header.
    nginx.check_identity(running.url, state, running.router_port)
    prometheus.wait_scraped(
        running.prometheus_url,
        set(ports.values()),
        directory / "prometheus" / "prometheus.log",
    )
    # 3. Stop what no longer serves.
    for process in replaced:
        supervised.remove(program_name(process.name, process.port))
        print(f"deploy: {env}/{process.name} stopped {process.bento} (pid {process.pid})")
    running.experiment_started = experiment_start(previous, state)
    save_running(running, directory)
    save_state(state, applied_path(settings, env))
    weights = ", ".join(f"{name} {weight}%" for name, weight in running.weights.items())
    print(f"deploy: {env} at {running.url} ({weights}); Prometheus {running.prometheus_url}")
    return running


def kept_port(
    settings: DriverSettings, env: str, setting: str, previous: Running | None, service: str
) -> int:
    """A service's port: the setting, else the one it had, else a free one."""
    fixed = settings.port(env, setting)
    if fixed:
        return fixed
    earlier = getattr(previous, f"{service}_port", None) if previous else None
    return int(earlier) if earlier else free_port()


def experiment_start(previous: Running | None, state: DeploymentState) -> float | None:
    """When the experiment of ``state`` started: kept while the same challenger runs."""
    challenger = state.challenger
    if challenger is None:
        return None
    if state.experiment.started_at is not None:
        return state.experiment.started_at.timestamp()
    if previous and previous.experiment_started:
        process = previous.variants.get("challenger")
        if process is not None and process.bento == challenger.bento:
            return previous.experiment_started
    return time.time()


def applied_path(settings: DriverSettings, env: str) -> Path:
    """Where apply keeps the state it last applied (``<run dir>/applied/<env>.yaml``)."""
    return settings.run_dir(env) / "applied" / f"{env}.yaml"


def applied_state(settings: DriverSettings, env: str) -> DeploymentState | None:
    """The state the last apply made run, if any (and readable)."""
    try:
        return load_state(applied_path(settings, env))
    except StateError:
        return None


def differences(settings: DriverSettings, state: DeploymentState) -> list[str]:
    """How what runs differs from ``state``: one sentence per difference (none: in sync)."""
    env = state.environment
    running = load_running(settings.run_dir(env))
    if running is None:
        return [f"{env} runs nothing (never deployed on this machine, or undeployed)"]
    found = []
    supervised = supervisor(settings, env)
    states = supervised.states()
    if not supervised.running():
        found.append(f"{env}'s supervisor is not running (a reboot, a kill): nothing is served")
    for variant in state.variants:
        process = running.variants.get(variant.name)
        if process is None:
            found.append(f"{variant.name}: git names {variant.bento}, nothing runs")
            continue
        if process.bento != variant.bento:
            found.append(f"{variant.name}: git names {variant.bento}, {process.bento} runs")
        elif states:
            program = program_name(process.name, process.port)
            condition = states.get(program, ("UNKNOWN", None))[0]
            if condition not in LIVE:
                found.append(f"{variant.name} ({process.bento}) is {condition}")
        if running.weights.get(variant.name) != variant.weight:
            found.append(
                f"{variant.name}: git gives it {variant.weight}%, the router "
                f"{running.weights.get(variant.name)}%"
            )
    for name, process in running.variants.items():
        if state.variant(name) is None:
            found.append(f"{name} ({process.bento}) runs, but git no longer names it")
    for program in (nginx.PROGRAM, prometheus.PROGRAM):
        condition = states.get(program, ("UNKNOWN", None))[0]
        if states and condition != "RUNNING":
            found.append(f"{program} is {condition}")
    return found


def revive(settings: DriverSettings, env: str, timeout: float = 60.0) -> bool:
    """Start the environment's supervisor if it is down; whether it had to.

    It starts its programs as they were (same ports): wait until none is still starting,
    so that apply finds them running rather than starting them twice.
    """
    supervised = supervisor(settings, env)
    if supervised.running():
        return False
    supervised.ensure_running()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(state != "STARTING" for state, _ in supervised.states().values()):
            break
        time.sleep(0.2)
    return True


def running_or_fail(settings: DriverSettings, env: str) -> Running:
    """What runs for ``env``.

    Raises:
        DeployError: When nothing is deployed there.
    """
    running = load_running(settings.run_dir(env))
    if running is None:
        raise DeployError(f"nothing is deployed to {env} (run dir {settings.run_dir(env)})")
    return running


def status(settings: DriverSettings, env: str) -> dict[str, Any]:
    """Health of everything the environment runs, as its supervisord reports it."""
    running = running_or_fail(settings, env)
    states = supervisor(settings, env).states()

    def state(program: str, variant: bool = False) -> dict[str, Any]:
        name, pid = states.get(program, ("UNKNOWN", None))
        if variant and pid:
            pid = served_pid(pid, timeout=1.0)  # the server under the variant's reaper
        return {"state": name, "pid": pid, "alive": name == "RUNNING"}

    report: dict[str, Any] = {
        "environment": env,
        "url": running.url,
        "prometheus": running.prometheus_url,
        "experiment_started": running.experiment_started,
        "variants": {
            name: {
                **asdict(process),
                "weight": running.weights.get(name),
                # Now: supervisord may have restarted the variant since it was deployed.
                **state(program_name(name, process.port), variant=True),
            }
            for name, process in running.variants.items()
        },
        "nginx": state("nginx"),
        "prometheus_process": state("prometheus"),
        "pushgateway": state(alerting.PUSHGATEWAY),
        "alertmanager": state(alerting.ALERTMANAGER),
    }
    if alerting.RELAY in states:
        report["relay"] = state(alerting.RELAY)
    services = ("nginx", "prometheus_process", "pushgateway", "alertmanager", "relay")
    report["healthy"] = all(item["alive"] for item in report["variants"].values()) and all(
        report[name]["alive"] for name in services if name in report
    )
    return report


def down(settings: DriverSettings, env: str) -> None:
    """Stop everything the environment runs (its supervisord too) and forget it."""
    directory = settings.run_dir(env)
    # Forget the programs too: a later apply chooses new ports, and a supervisord started
    # on the old files would bring back services on the old ones.
    supervisor(settings, env).shutdown(forget=True)
    (directory / "running.json").unlink(missing_ok=True)
    print(f"deploy: {env} stopped")
