"""Kubernetes manifests from the same state files: ``python -m scripts.k8s render|validate``.

``render --env ENV`` writes ``bentos/deployments/k8s/<env>/`` from
``bentos/deployments/<env>.yaml``: per variant a Deployment (the Bento's image, readiness on
``/readyz``, liveness on ``/livez``, resource requests, Prometheus scrape annotations) and a
Service; one Gateway API ``HTTPRoute`` splitting traffic with weighted ``backendRefs``.
The directory is committed with the state file, so Argo CD or Flux can sync it from main
(or a workflow can ``kubectl apply -f`` it).

``validate [DIR...]`` checks every manifest offline: core kinds against the Kubernetes
OpenAPI schemas shipped by ``kubernetes-validate`` (strict: unknown fields fail), the
HTTPRoute against the vendored subset of the Gateway API v1 CRD schema
(``scripts/k8s_schemas/httproute_v1.json``). No cluster is needed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from scripts.deploy_state import STATE_DIR, DeploymentState, StateError, load_state, state_path

K8S_VERSION = "1.33.0"
PORT = 3000
SCHEMAS = Path(__file__).parent / "k8s_schemas"
APP = "credit-risk"


def _name(state: DeploymentState, variant: str) -> str:
    return f"{APP}-{state.environment}-{variant}"


def image_of(bento: str, repository: str) -> str:
    """The image of a Bento: ``<repository>:<bento version>`` (``make image`` pushes it)."""
    return f"{repository}:{bento.split(':', 1)[1]}"


def render(
    state: DeploymentState, repository: str, namespace: str, gateway: str
) -> list[dict[str, Any]]:
    """The manifests of one environment (empty when nothing is deployed yet)."""
    manifests: list[dict[str, Any]] = []
    for variant in state.variants:
        name = _name(state, variant.name)
        labels = {
            "app.kubernetes.io/name": APP,
            "app.kubernetes.io/instance": name,
            "gitops-ml/environment": state.environment,
            "gitops-ml/variant": variant.name,
        }
        metadata = {"name": name, "namespace": namespace, "labels": labels}
        manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {**metadata, "annotations": {"gitops-ml/bento": variant.bento}},
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
                        "spec": {
                            "containers": [
                                {
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
                                    "readinessProbe": {
                                        "httpGet": {"path": "/readyz", "port": PORT},
                                        "periodSeconds": 5,
                                    },
                                    "livenessProbe": {
                                        "httpGet": {"path": "/livez", "port": PORT},
                                        "initialDelaySeconds": 20,
                                        "periodSeconds": 10,
                                    },
                                }
                            ]
                        },
                    },
                },
            }
        )
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata,
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
                },
            }
        )
    if state.variants:
        manifests.append(
            {
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
                                {
                                    "name": _name(state, variant.name),
                                    "port": PORT,
                                    "weight": variant.weight,
                                }
                                for variant in state.variants
                            ],
                        }
                    ],
                },
            }
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Render or validate; exit 1 listing every problem."""
    parser = argparse.ArgumentParser(prog="python -m scripts.k8s", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    renderer = commands.add_parser("render")
    renderer.add_argument("--env", action="append", required=True)
    renderer.add_argument("--state-dir", type=Path, default=STATE_DIR)
    renderer.add_argument(
        "--image-repository",
        default=os.environ.get("IMAGE_REPOSITORY", "ghcr.io/OWNER/REPO").lower(),
    )
    renderer.add_argument("--namespace", default="gitops-ml")
    renderer.add_argument("--gateway", default="gitops-ml-gateway")
    checker = commands.add_parser("validate")
    checker.add_argument("directories", type=Path, nargs="*", default=[STATE_DIR / "k8s"])
    args = parser.parse_args(argv)
    problems: list[str] = []
    try:
        if args.command == "render":
            for env in args.env:
                state = load_state(state_path(env, args.state_dir))
                manifests = render(state, args.image_repository, args.namespace, args.gateway)
                for manifest in manifests:
                    problems += validate_manifest(manifest)
                if not problems:
                    paths = write(manifests, args.state_dir / "k8s" / env)
                    print(f"k8s: {env}: {len(paths)} manifests in {args.state_dir / 'k8s' / env}")
        else:
            files = [p for d in args.directories for p in sorted(d.rglob("*.yaml"))]
            for path in files:
                for manifest in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                    problems += [f"{path}: {line}" for line in validate_manifest(manifest)]
            print(f"k8s: {len(files)} files checked")
    except (StateError, OSError, yaml.YAMLError) as error:
        print(f"k8s: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"k8s: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
