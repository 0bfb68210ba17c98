"""Prometheus for an environment: its scrape config and lifecycle, and the A/B job's queries.

The local driver runs one Prometheus per environment scraping every variant with a
``variant`` label; :func:`figures` reads each variant's counters since the experiment
started from any Prometheus given by URL.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from itertools import accumulate
from pathlib import Path

from scripts.cd.checks import wait_ready
from scripts.cd.errors import DeployError, PrometheusError
from scripts.cd.promotion import QUANTILE, Figures, LatencyHistogram
from scripts.cd.supervisor import Program, Supervisor, service_env

QUERIES = {
    "requests": 'sum by (variant) (bentoml_service_request_total{endpoint="/predict"})',
    "errors": (
        'sum by (variant) (bentoml_service_request_total{endpoint="/predict",'
        'http_response_code=~"5.."})'
    ),
    "feedback": "sum by (variant) (credit_risk_feedback_total)",
    "correct": "sum by (variant) (credit_risk_feedback_correct_total)",
}
# The latency histogram's cumulative buckets, per variant and upper bound `le` (seconds):
# the p95 guardrail tests these counts, and the reported p95 is interpolated from them.
BUCKETS = (
    "sum by (variant, le) " '(bentoml_service_request_duration_seconds_bucket{endpoint="/predict"})'
)


def render(
    environment: str,
    targets: Mapping[str, tuple[int, str]],
    interval: str,
    pushgateway_port: int | None = None,
    alertmanager_port: int | None = None,
    relay_port: int | None = None,
) -> str:
    """prometheus.yml: every variant's /metrics with variant and environment labels.

    With the alerting ports (:mod:`scripts.cd.alerting`): the Pushgateway and the retraining
    relay scraped too, the rules of ``rules.yml`` (beside this file) evaluated and sent to
    the Alertmanager.

    Args:
        environment: The environment's name (a label on every series).
        targets: ``{variant: (port, bento tag)}``.
        interval: Scrape and evaluation interval, e.g. ``15s``.
        pushgateway_port: The Pushgateway the drift job pushes to.
        alertmanager_port: Where firing alerts go.
        relay_port: The retraining relay, when the runner configures one (its dispatch
            outcomes: ``RetrainingDispatchRefused``).
    """
    static = [
        {
            "targets": [f"127.0.0.1:{port}"],
            "labels": {"variant": name, "environment": environment, "bento": bento},
        }
        for name, (port, bento) in sorted(targets.items())
    ]
    document = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "credit-risk",
                "metrics_path": "/metrics",
                # The service labels its own series with `variant`; keep them.
                "honor_labels": True,
                "static_configs": static,
            }
        ],
    }
    if pushgateway_port is not None:
        document["scrape_configs"].append(  # type: ignore[attr-defined]
            {
                "job_name": "drift",
                # The drift job's own labels (job, feature) stay as it pushed them.
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{pushgateway_port}"],
                        "labels": {"environment": environment},
                    }
                ],
            }
        )
    if relay_port is not None:
        document["scrape_configs"].append(  # type: ignore[attr-defined]
            {
                "job_name": "retraining-relay",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{relay_port}"],
                        "labels": {"environment": environment},
                    }
                ],
            }
        )
    if alertmanager_port is not None:
        document["rule_files"] = ["rules.yml"]
        document["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        }
    return json.dumps(document, indent=2) + "\n"  # JSON is YAML


PROGRAM = "prometheus"


def reload(base_url: str) -> None:
    """Ask a running Prometheus or Alertmanager to re-read its files (``POST /-/reload``)."""
    request = urllib.request.Request(f"{base_url}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def start_or_reload(
    supervised: Supervisor, port: int, config: str, directory: Path, rules: str = ""
) -> int:
    """Write the config and rules; start Prometheus under ``supervised`` on ``port``, or reload."""
    directory.mkdir(parents=True, exist_ok=True)
    if rules:
        (directory / "rules.yml").write_text(rules, encoding="utf-8")
    (directory / "prometheus.yml").write_text(config, encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    running = supervised.pid(PROGRAM)
    if running is not None:
        reload(url)
        return running
    command = [
        "prometheus",
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    pid = supervised.add(
        Program(PROGRAM, command, service_env(os.environ), directory / "prometheus.log")
    )
    wait_ready(url, path="/-/ready")
    return pid


def wait_scraped(url: str, ports: set[int], log: Path, timeout: float = 30.0) -> None:
    """Wait until Prometheus scrapes every loopback port (new targets take ~5 s).

    Raises:
        DeployError: Naming the targets and the log when it does not within ``timeout``.
    """
    wanted = {f"127.0.0.1:{port}" for port in ports}
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
            up = {t["labels"].get("instance") for t in targets if t.get("health") == "up"}
            if wanted <= up:
                return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise DeployError(
                f"Prometheus {url} does not scrape {sorted(wanted)} after "
                f"{timeout:.0f} s (log: {log})"
            )
        time.sleep(0.5)


def query(base_url: str, promql: str, at: float) -> dict[str, float]:
    """Instant query; ``{variant: value}``.

    Raises:
        PrometheusError: Unreachable, or an error answer.
    """
    return {
        labels[0]: value for labels, value in query_by(base_url, promql, at, ("variant",)).items()
    }


def query_by(
    base_url: str, promql: str, at: float, labels: tuple[str, ...]
) -> dict[tuple[str, ...], float]:
    """Instant query; ``{(label values...): value}`` for the ``labels`` named.

    Raises:
        PrometheusError: Unreachable, or an error answer.
    """
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql, "time": f"{at:.3f}"}
    )
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as error:
        raise PrometheusError(f"{base_url} unreachable for {promql!r}: {error}") from error
    if document.get("status") != "success":
        raise PrometheusError(f"{promql!r}: {document.get('error', document)}")
    values = {}
    for sample in document["data"]["result"]:
        value = float(sample["value"][1])
        if not math.isnan(value):
            values[tuple(sample["metric"].get(label, "") for label in labels)] = value
    return values


def since_start(latest: float, earlier: float) -> int:
    """A counter's increase; after a reset (the value fell) the count since the reset."""
    return round(latest - earlier if latest >= earlier else latest)


def latency_histograms(base_url: str, since: float, now: float) -> dict[str, LatencyHistogram]:
    """Each variant's /predict latency histogram between ``since`` and ``now``, in ms."""
    labels = ("variant", "le")
    latest = query_by(base_url, BUCKETS, now, labels)
    earlier = query_by(base_url, BUCKETS, since, labels)
    buckets: dict[str, dict[float, int]] = {}
    for (variant, le), value in latest.items():
        increase = since_start(value, earlier.get((variant, le), 0.0))
        buckets.setdefault(variant, {})[float(le)] = increase
    histograms = {}
    for variant, counts in buckets.items():
        bounds = sorted(bound for bound in counts if math.isfinite(bound))
        # A reset in some buckets only could break the order; a histogram never decreases.
        cumulative = [int(c) for c in accumulate((counts[b] for b in bounds), max, initial=0)]
        histograms[variant] = LatencyHistogram(
            bounds_ms=tuple(round(bound * 1000, 6) for bound in bounds),
            cumulative=tuple(cumulative[1:]),
            count=max(counts.get(math.inf, 0), cumulative[-1]),
        )
    return histograms


def figures(base_url: str, since: float, now: float) -> dict[str, Figures]:
    """Per-variant figures between ``since`` and ``now`` (counter differences, resets counted)."""
    counts: dict[str, dict[str, int]] = {}
    for name, promql in QUERIES.items():
        latest, earlier = query(base_url, promql, now), query(base_url, promql, since)
        for variant, value in latest.items():
            counts.setdefault(variant, {})[name] = since_start(value, earlier.get(variant, 0.0))
    histograms = latency_histograms(base_url, since, now)
    measured = {}
    for variant, values in counts.items():
        histogram = histograms.get(variant)
        p95 = histogram.quantile(QUANTILE) if histogram is not None else None
        measured[variant] = Figures(
            requests=values.get("requests", 0),
            errors=values.get("errors", 0),
            feedback=values.get("feedback", 0),
            correct=values.get("correct", 0),
            p95_ms=round(p95, 3) if p95 is not None else None,
            latency=histogram,
        )
    return measured
