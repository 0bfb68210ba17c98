"""An environment's alert path: Pushgateway, Alertmanager and the retraining relay.

The local driver runs them as programs of the environment's supervisord, beside Prometheus:

* the **Pushgateway** keeps the drift job's last scores (``make drift`` pushes to it;
  ``python -m scripts.deploy url --service pushgateway``), and Prometheus scrapes it;
* Prometheus evaluates ``monitoring/prometheus/rules.yml`` (copied into the run directory:
  nothing runs from a job's checkout) and sends firing alerts to the **Alertmanager**;
* the Alertmanager routes ``action="retrain"`` alerts (``DataDriftDetected``) to the
  **relay** (:mod:`monitoring.relay`), which asks GitHub for a retraining run (a
  ``workflow_dispatch`` of drift.yml); everything else stays visible in the Alertmanager
  (add your team's receivers in ``monitoring/alertmanager/alertmanager.yml``'s style).

The relay runs where the deploy runner configures it: ``GITOPS_ML_DISPATCH_TOKEN_FILE`` (a
file holding a token allowed to dispatch, never an environment variable) and the
repository (``GITHUB_REPOSITORY``). Without them the retrain alerts stop at the
Alertmanager, and the deploy says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.cd.checks import wait_ready
from scripts.cd.prometheus import reload
from scripts.cd.runtime import RelaySettings
from scripts.cd.supervisor import Program, Supervisor, service_env

__all__ = ["Ports", "RelaySettings", "render_alertmanager", "render_rules", "start"]

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
PUSHGATEWAY, ALERTMANAGER, RELAY = "pushgateway", "alertmanager", "relay"


@dataclass(frozen=True)
class Ports:
    """The environment's alerting ports."""

    pushgateway: int
    alertmanager: int
    relay: int


def render_rules(source: Path = RULES, alert_for: str = "") -> str:
    """The alert rules as Prometheus loads them; ``alert_for`` shortens every ``for:``.

    ``alert_for`` (``GITOPS_ML_ALERT_FOR``) is for the tests and the demo, which cannot wait
    30 minutes; ``promtool test rules`` checks the real durations.
    """
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    if alert_for:
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = alert_for
    return yaml.safe_dump(document, sort_keys=False)


def render_alertmanager(relay_port: int | None, group_wait: str) -> str:
    """alertmanager.yml: ``action="retrain"`` to the relay, the rest kept in Alertmanager."""
    receivers: list[dict[str, object]] = [{"name": "alertmanager-only"}]
    routes = []
    if relay_port is not None:
        receivers.append(
            {
                "name": "retrain-relay",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{relay_port}/alerts", "send_resolved": False}
                ],
            }
        )
        # One group for every drifted feature: one dispatch, one retraining run.
        routes.append(
            {
                "matchers": ['action="retrain"'],
                "receiver": "retrain-relay",
                "group_by": ["alertname", "environment"],
            }
        )
    document = {
        "route": {
            "receiver": "alertmanager-only",
            "group_by": ["alertname", "environment", "variant", "feature"],
            "group_wait": group_wait,
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": receivers,
    }
    return json.dumps(document, indent=2) + "\n"  # JSON is YAML


def relay_changed(supervised: Supervisor) -> bool:
    """Whether the relay's running copy differs from this checkout's ``monitoring/relay.py``."""
    installed = supervised.directory / "relay.py"
    source = MONITORING / "relay.py"
    return not installed.is_file() or installed.read_bytes() != source.read_bytes()


def start(
    supervised: Supervisor,
    directory: Path,
    ports: Ports,
    relay: RelaySettings | None,
    environment: str,
    group_wait: str,
) -> None:
    """Start (or reconfigure) the Pushgateway, the relay and the Alertmanager."""
    directory.mkdir(parents=True, exist_ok=True)
    env = service_env(os.environ)
    if supervised.pid(PUSHGATEWAY) is None:
        command = [
            "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{ports.pushgateway}",
            # The last scores survive a restart: the alert must not reset with it.
            f"--persistence.file={directory / 'pushgateway.db'}",
        ]
        supervised.add(Program(PUSHGATEWAY, command, env, directory / "pushgateway.log"))
        wait_ready(f"http://127.0.0.1:{ports.pushgateway}", path="/-/ready")
    if relay is not None and supervised.pid(RELAY) is not None and relay_changed(supervised):
        # A host upgraded from an older template: its relay would keep the old request.
        supervised.remove(RELAY)
    if relay is not None and supervised.pid(RELAY) is None:
        command = [
            str(supervised.python),  # standard library only; never the jobs' venv
            str(supervised.install(MONITORING / "relay.py")),
            f"--port={ports.relay}",
            f"--repository={relay.repository}",
            f"--token-file={relay.token_file}",
            f"--api={relay.api}",
            f"--state={directory / 'dispatched.json'}",
            f"--environment={environment}",
        ]
        supervised.add(Program(RELAY, command, env, directory / "relay.log"))
        wait_ready(f"http://127.0.0.1:{ports.relay}", path="/-/healthy")
    config = directory / "alertmanager.yml"
    config.write_text(
        render_alertmanager(ports.relay if relay else None, group_wait), encoding="utf-8"
    )
    url = f"http://127.0.0.1:{ports.alertmanager}"
    if supervised.pid(ALERTMANAGER) is not None:
        reload(url)
        return
    command = [
        "prometheus-alertmanager",
        f"--config.file={config}",
        f"--storage.path={directory / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
    supervised.add(Program(ALERTMANAGER, command, env, directory / "alertmanager.log"))
    wait_ready(url, path="/-/ready")
