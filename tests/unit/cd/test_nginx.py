"""The router's config renderer against golden files (no nginx runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.cd import nginx
from scripts.cd.state import DeploymentState, parse_state

GOLDEN = Path(__file__).parent / "golden"
RUN_DIR = Path("/run/gitops-ml/production/nginx")


def production(variants: list[tuple[str, str, int]]) -> DeploymentState:
    return parse_state(
        {
            "environment": "production",
            "variants": [{"name": n, "bento": b, "weight": w} for n, b, w in variants],
        },
        Path("production.yaml"),
    )


@pytest.mark.parametrize(
    ("golden", "variants", "ports"),
    [
        (
            "nginx-ab.conf",
            [("champion", "credit_risk:a", 90), ("challenger", "credit_risk:b", 10)],
            {"champion": 40001, "challenger": 40002},
        ),
        ("nginx-champion.conf", [("champion", "credit_risk:a", 100)], {"champion": 40001}),
    ],
)
def test_render_matches_the_golden_file(
    golden: str, variants: list[tuple[str, str, int]], ports: dict[str, int]
) -> None:
    rendered = nginx.render(production(variants), ports, 8080, RUN_DIR)
    assert rendered == (GOLDEN / golden).read_text(encoding="utf-8")


def test_a_challenger_at_weight_zero_gets_no_traffic_but_keeps_its_failover() -> None:
    state = production([("champion", "credit_risk:a", 100), ("challenger", "credit_risk:b", 0)])
    rendered = nginx.render(state, {"champion": 40001, "challenger": 40002}, 8080, RUN_DIR)
    assert "split_clients" not in rendered
    assert 'map $route_key $variant { default "champion"; }' in rendered
    assert "server 127.0.0.1:40001 backup;" in rendered


def test_the_sticky_header_becomes_an_nginx_variable() -> None:
    state = production([("champion", "credit_risk:a", 100)])
    state = state.model_copy(
        update={"routing": state.routing.model_copy(update={"sticky_header": "X-Session-Key"})}
    )
    rendered = nginx.render(state, {"champion": 40001}, 8080, RUN_DIR)
    assert (
        'map $http_x_session_key $route_key { "" $request_id; default $http_x_session_key; }'
        in (rendered)
    )
