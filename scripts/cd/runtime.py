"""The local driver's runtime: its settings and what it runs (``<run dir>/<env>/running.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_RUN_ROOT = Path.home() / ".local/state/gitops-ml"


@dataclass(frozen=True)
class RelaySettings:
    """Where the retraining relay sends its dispatches (:mod:`scripts.cd.alerting`)."""

    repository: str
    token_file: Path
    api: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RelaySettings | None:
        """``GITOPS_ML_DISPATCH_TOKEN_FILE``, ``GITHUB_REPOSITORY`` and the API URL.

        None when the runner configures no token file or no repository: no relay.
        """
        token_file = environ.get("GITOPS_ML_DISPATCH_TOKEN_FILE", "")
        repository = environ.get("GITHUB_REPOSITORY", "")
        if not token_file or not repository:
            return None
        api = environ.get("GITOPS_ML_GITHUB_API") or environ.get("GITHUB_API_URL") or ""
        return cls(repository, Path(token_file), api or "https://api.github.com")


@dataclass(frozen=True)
class DriverSettings:
    """The delivery code's runtime settings, read once from the environment.

    Attributes:
        run_root: ``GITOPS_ML_RUN_DIR``: PIDs, configs, logs and each environment's BentoML
            store live under ``<run_root>/<env>`` (default ``~/.local/state/gitops-ml``).
        scrape_interval: ``GITOPS_ML_SCRAPE_INTERVAL``: Prometheus's scrape and evaluation
            interval (default ``15s``; tests and the demo use ``2s``).
        ports: ``GITOPS_ML_<ENV>_PORT`` / ``GITOPS_ML_<ENV>_PROMETHEUS_PORT``: fixed ports for
            an environment's router and Prometheus (tests pick free ports this way).
        kubeconfig_data: ``KUBECONFIG_DATA``: the content of a kubeconfig (a secret in CI).
        kubeconfig: ``KUBECONFIG``: the path of one already on the machine.
        prometheus_url: ``PROMETHEUS_URL``: the Prometheus the A/B decision queries, when it
            is not the local driver's.
        urls: ``GITOPS_ML_<ENV>_URL``: an environment's router or gateway when it is served
            elsewhere (the kubernetes driver): what the smoke test and live gate call.
        alert_for: ``GITOPS_ML_ALERT_FOR``: replaces every alert rule's ``for:`` (tests and
            the demo, which cannot wait 30 minutes; empty: the rules' own).
        alert_group_wait: ``GITOPS_ML_ALERT_GROUP_WAIT``: how long Alertmanager gathers a
            new group's alerts before sending (default ``30s``).
        relay: the retraining relay's settings (:class:`RelaySettings`), None without them.
    """

    run_root: Path = DEFAULT_RUN_ROOT
    scrape_interval: str = "15s"
    ports: Mapping[str, int] = field(default_factory=dict)
    kubeconfig_data: str = ""
    kubeconfig: str = ""
    prometheus_url: str = ""
    urls: Mapping[str, str] = field(default_factory=dict)
    alert_for: str = ""
    alert_group_wait: str = "30s"
    relay: RelaySettings | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DriverSettings:
        """The settings from ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        ports = {
            key.removeprefix("GITOPS_ML_"): _port(key, value)
            for key, value in env.items()
            if key.startswith("GITOPS_ML_") and key.endswith("_PORT") and value
        }
        return cls(
            run_root=Path(env.get("GITOPS_ML_RUN_DIR") or DEFAULT_RUN_ROOT),
            scrape_interval=env.get("GITOPS_ML_SCRAPE_INTERVAL") or "15s",
            ports=ports,
            kubeconfig_data=env.get("KUBECONFIG_DATA", ""),
            kubeconfig=env.get("KUBECONFIG", ""),
            prometheus_url=env.get("PROMETHEUS_URL", ""),
            urls={
                key.removeprefix("GITOPS_ML_").removesuffix("_URL").lower(): value.rstrip("/")
                for key, value in env.items()
                if key.startswith("GITOPS_ML_") and key.endswith("_URL") and value
            },
            alert_for=env.get("GITOPS_ML_ALERT_FOR", ""),
            alert_group_wait=env.get("GITOPS_ML_ALERT_GROUP_WAIT") or "30s",
            relay=RelaySettings.from_env(env),
        )

    def run_dir(self, env: str) -> Path:
        """The environment's run directory."""
        return self.run_root / env

    def port(self, env: str, service: str) -> int | None:
        """A fixed port for ``service`` (``PORT``, ``PROMETHEUS_PORT``) of ``env``, if set."""
        return self.ports.get(f"{env.upper()}_{service}")


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{name}: expected a TCP port (1-65535), got {value!r}")
    return int(value)


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
    pushgateway_port: int | None = None
    alertmanager_port: int | None = None
    relay_port: int | None = None

    @property
    def url(self) -> str:
        """The router's base URL."""
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus's base URL."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def pushgateway_url(self) -> str:
        """The Pushgateway the drift job pushes to."""
        return f"http://127.0.0.1:{self.pushgateway_port}"

    @property
    def alertmanager_url(self) -> str:
        """The Alertmanager Prometheus sends to."""
        return f"http://127.0.0.1:{self.alertmanager_port}"


def load_running(directory: Path) -> Running | None:
    """The run recorded in an environment's run directory, if any."""
    path = directory / "running.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["variants"] = {name: Process(**p) for name, p in raw["variants"].items()}
    return Running(**raw)


def save_running(running: Running, directory: Path) -> None:
    """Record the run (atomically)."""
    path = directory / "running.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(running), indent=2), encoding="utf-8")
    temporary.replace(path)
