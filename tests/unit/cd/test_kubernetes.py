"""Kubernetes manifests render from the state files and validate offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scripts import k8s
from scripts.cd import kubernetes
from scripts.cd.state import parse_state, save_state


def state(environment: str, variants: list[tuple[str, str, int]]) -> dict[str, object]:
    return {
        "environment": environment,
        "driver": "kubernetes",
        "variants": [{"name": n, "bento": b, "weight": w} for n, b, w in variants],
    }


@pytest.mark.parametrize(
    ("environment", "variants"),
    [
        ("staging", [("champion", "credit_risk:abc1234", 100)]),
        (
            "production",
            [("champion", "credit_risk:abc1234", 90), ("challenger", "credit_risk:def5678", 10)],
        ),
    ],
)
def test_render_and_validate(
    tmp_path: Path, environment: str, variants: list[tuple[str, str, int]]
) -> None:
    save_state(
        parse_state(state(environment, variants), Path("x")), tmp_path / f"{environment}.yaml"
    )
    args = [
        "render",
        "--env",
        environment,
        "--state-dir",
        str(tmp_path),
        "--image-repository",
        "ghcr.io/team/models",
    ]
    assert k8s.main(args) == 0
    rendered = tmp_path / "k8s" / environment
    documents = [yaml.safe_load(p.read_text()) for p in sorted(rendered.glob("*.yaml"))]
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == sorted(["Deployment", "Service"] * len(variants) + ["HTTPRoute"])
    (route,) = (d for d in documents if d["kind"] == "HTTPRoute")
    weights = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {f"credit-risk-{environment}-{n}": w for n, _, w in variants}
    images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in documents
        if d["kind"] == "Deployment"
    }
    assert images == {f"ghcr.io/team/models:{b.split(':')[1]}" for _, b, _ in variants}
    assert k8s.main(["validate", str(rendered)]) == 0


def test_validation_names_the_broken_field() -> None:
    deployment = kubernetes.render(
        parse_state(state("staging", [("champion", "credit_risk:abc1234", 100)]), Path("x")),
        "ghcr.io/team/models",
        "ns",
        "gw",
    )[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    (problem,) = kubernetes.validate_manifest(deployment)
    assert "Deployment/credit-risk-staging-champion" in problem
    assert "containerPort" in problem
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{"backendRefs": [{"name": "s", "weight": -1}]}]},
    }
    assert any("weight" in p for p in kubernetes.validate_manifest(route))
