"""The ``kubernetes`` driver: manifests rendered from the same state files, validated offline.

:func:`render` makes, per variant, a Deployment (the Bento's image, readiness on
``/readyz``, liveness on ``/livez``, resource requests, Prometheus scrape annotations) and a
Service, and one Gateway API ``HTTPRoute`` splitting traffic with weighted ``backendRefs``.
``bentos/deployments/k8s/<env>/`` is committed with the state file, so Argo CD or Flux can
sync it from main, or :func:`apply` runs ``kubectl apply -f`` on it.

:func:`validate_manifest` checks a manifest offline: core kinds against the Kubernetes
OpenAPI schemas shipped by ``kubernetes-validate`` (strict: unknown fields fail), the
HTTPRoute against the vendored subset of the Gateway API v1 CRD schema
(``scripts/cd/k8s_schemas/httproute_v1.json``). No cluster is needed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from scripts.cd.errors import DeployError
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import DeploymentState, Variant

K8S_VERSION = "1.33.0"
PORT = 3000
SCHEMAS = Path(__file__).parent / "k8s_schemas"
APP = "credit-risk"


def _name(state: DeploymentState, variant: str) -> str:
    return f"{APP}-{state.environment}-{variant}"


def image_of(bento: str, repository: str) -> str:
    """The image of a Bento: ``<repository>:<bento version>`` (``make image`` pushes it)."""
    return f"{repository}:{bento.split(':', 1)[1]}"


def _labels(state: DeploymentState, variant: Variant) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": _name(state, variant.name),
        "gitops-ml/environment": state.environment,
        "gitops-ml/variant": variant.name,
    }


def _container(variant: Variant, repository: str) -> dict[str, Any]:
    return {
        "name": "bento",
        "image": image_of(variant.bento, repository),
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [
            {"name": "GITOPS_ML_VARIANT", "value": variant.name},
            {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"memory": "1Gi"},
        },
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": PORT},
            "initialDelaySeconds": 20,
            "periodSeconds": 10,
        },
    }


def deployment(
    state: DeploymentState, variant: Variant, repository: str, namespace: str
) -> dict[str, Any]:
    """The Deployment of one variant: its Bento's image, probes, resources, scrape hints."""
    labels = _labels(state, variant)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": _name(state, variant.name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {"gitops-ml/bento": variant.bento},
        },
        "spec": {
            "replicas": 2 if variant.weight >= 50 else 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {"containers": [_container(variant, repository)]},
            },
        },
    }


def service(state: DeploymentState, variant: Variant, namespace: str) -> dict[str, Any]:
    """The Service in front of one variant's pods."""
    labels = _labels(state, variant)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": _name(state, variant.name), "namespace": namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
        },
    }


def http_route(state: DeploymentState, namespace: str, gateway: str) -> dict[str, Any]:
    """The Gateway API HTTPRoute splitting traffic between the variants by weight."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": f"{APP}-{state.environment}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": APP},
        },
        "spec": {
            "parentRefs": [{"name": gateway}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": _name(state, v.name), "port": PORT, "weight": v.weight}
                        for v in state.variants
                    ],
                }
            ],
        },
    }


def render(
    state: DeploymentState, repository: str, namespace: str, gateway: str
) -> list[dict[str, Any]]:
    """The manifests of one environment (empty when nothing is deployed yet)."""
    manifests: list[dict[str, Any]] = []
    for variant in state.variants:
        manifests.append(deployment(state, variant, repository, namespace))
        manifests.append(service(state, variant, namespace))
    if state.variants:
        manifests.append(http_route(state, namespace, gateway))
    return manifests


@functools.cache
def httproute_validator() -> Any:
    """The vendored HTTPRoute schema's validator (read once)."""
    schema = json.loads((SCHEMAS / "httproute_v1.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """Problems of one manifest (empty when valid), each naming the kind, name and field."""
    import kubernetes_validate

    where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    if manifest.get("kind") == "HTTPRoute":
        return [
            f"{where}: {'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in httproute_validator().iter_errors(manifest)
        ]
    try:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {'.'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no schema for {manifest.get('apiVersion')} {manifest.get('kind')}"]
    return []


def write(manifests: Iterable[dict[str, Any]], directory: Path) -> list[Path]:
    """One YAML file per manifest; stale files of earlier renders removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    paths = []
    for manifest in manifests:
        path = directory / f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths


def image_repository(environ: Mapping[str, str] | None = None) -> str:
    """Where ``make image`` pushes images, lower-cased as registries want.

    ``IMAGE_REPOSITORY``, else ``ghcr.io/<owner>/<repo>`` of the workflow run
    (``GITHUB_REPOSITORY``); a placeholder on a laptop.
    """
    env = os.environ if environ is None else environ
    repository = env.get("IMAGE_REPOSITORY") or (
        f"ghcr.io/{env['GITHUB_REPOSITORY']}"
        if env.get("GITHUB_REPOSITORY")
        else "ghcr.io/owner/repo"
    )
    return repository.lower()


def render_environment(
    state: DeploymentState, directory: Path, repository: str, namespace: str, gateway: str
) -> tuple[list[Path], list[str]]:
    """Render, validate and (when valid) write one environment's manifests to ``directory``.

    Returns:
        The files written (none when a manifest is invalid) and the problems found.
    """
    manifests = render(state, repository, namespace, gateway)
    problems = [problem for manifest in manifests for problem in validate_manifest(manifest)]
    return ([] if problems else write(manifests, directory)), problems


def validate_files(directories: Iterable[Path]) -> tuple[int, list[str]]:
    """Validate every YAML manifest under ``directories``: the file count and the problems."""
    files = [path for directory in directories for path in sorted(directory.rglob("*.yaml"))]
    problems = []
    for path in files:
        for manifest in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            problems += [f"{path}: {line}" for line in validate_manifest(manifest)]
    return len(files), problems


def apply(directory: Path, settings: DriverSettings) -> None:
    """``kubectl apply`` rendered manifests when a cluster is configured; else say who does.

    A kubeconfig given as content (``KUBECONFIG_DATA``, a CI secret) lives in a temporary
    file, readable by this user only, removed after use.
    """
    if not directory.is_dir():
        raise DeployError(f"{directory}: not rendered; run `python -m scripts.k8s render`")
    if not shutil.which("kubectl") or not (settings.kubeconfig or settings.kubeconfig_data):
        print(
            f"deploy: {directory.name} uses the kubernetes driver and no KUBECONFIG is set: "
            f"Argo CD / Flux sync {directory} from main"
        )
        return
    with contextlib.ExitStack() as stack:
        config = settings.kubeconfig
        if not config:
            handle = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".kubeconfig"))
            handle.write(settings.kubeconfig_data)
            handle.flush()
            config = handle.name
        env = {**os.environ, "KUBECONFIG": config}
        subprocess.run(["kubectl", "apply", "-f", str(directory)], check=True, env=env)
