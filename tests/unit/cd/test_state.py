"""The deployment state files: schema errors, and the edits releases and decisions make."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scripts.cd.state import (
    StateError,
    load_state,
    parse_state,
    promoted,
    released,
    rolled_back,
    save_state,
)
from scripts.dev.workspace import PROJECT_ROOT


def variants(*items: tuple[str, str, int]) -> list[dict[str, object]]:
    return [{"name": n, "bento": b, "weight": w} for n, b, w in items]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ((("champion", "m:a", 60), ("challenger", "m:b", 30)), "weights must sum to 100, got 90"),
        ((("champion", "m:a", 50), ("champion", "m:b", 50)), "duplicate variant names"),
        ((("challenger", "m:a", 100),), "a variant named 'champion' is required"),
        ((("champion", "not a tag", 100),), "variants.0.bento: String should match pattern"),
        ((("canary", "m:a", 100),), "variants.0.name: Input should be 'champion' or 'challenger'"),
    ],
)
def test_invalid_states_are_refused_with_the_key(
    items: tuple[tuple[str, str, int], ...], message: str
) -> None:
    with pytest.raises(StateError, match=r"production\.yaml") as raised:
        parse_state(
            {"environment": "production", "variants": variants(*items)}, Path("production.yaml")
        )
    assert message in str(raised.value)


@pytest.mark.parametrize("confidence", [0.5, 1.0, "high"])
def test_a_guardrail_confidence_outside_0_5_to_1_is_refused(confidence: object) -> None:
    raw = {"environment": "production", "experiment": {"guardrails": {"confidence": confidence}}}
    with pytest.raises(StateError) as raised:
        parse_state(raw, Path("production.yaml"))
    assert "production.yaml: 1 invalid setting(s)" in str(raised.value)
    assert "experiment.guardrails.confidence: " in str(raised.value)
    assert f"(got {confidence!r})" in str(raised.value)


def test_the_guardrail_confidence_defaults_to_99_percent() -> None:
    state = parse_state({"environment": "production"}, Path("production.yaml"))
    assert state.experiment.guardrails.confidence == 0.99


def test_the_template_state_files_are_valid() -> None:
    for environment in ("staging", "production"):
        state = load_state(PROJECT_ROOT / "bentos" / "deployments" / f"{environment}.yaml")
        assert state.environment == environment


def test_file_name_and_environment_must_agree(tmp_path: Path) -> None:
    state = parse_state({"environment": "staging"}, Path("x"))
    save_state(state, tmp_path / "production.yaml")
    with pytest.raises(StateError, match="must match the file name 'production'"):
        load_state(tmp_path / "production.yaml")


def test_release_promote_rollback_edits() -> None:
    production = parse_state({"environment": "production", "on_release": "challenger"}, Path("x"))
    first = released(production, "m:a")
    assert [(v.name, v.bento, v.weight) for v in first.variants] == [("champion", "m:a", 100)]
    second = released(first, "m:b")
    assert [(v.name, v.bento, v.weight) for v in second.variants] == [
        ("champion", "m:a", 90),
        ("challenger", "m:b", 10),
    ]
    assert released(second, "m:a") == second
    assert [v.bento for v in promoted(second).variants] == ["m:b"]
    # The experiment's start is in the state (git), kept while the same challenger runs.
    started = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    running = released(first, "m:b", now=started)
    assert running.experiment.started_at == started
    assert released(running, "m:b", now=started + dt.timedelta(hours=3)) == running
    restarted = released(running, "m:c", now=started + dt.timedelta(hours=3))
    assert restarted.experiment.started_at == started + dt.timedelta(hours=3)
    assert promoted(running).experiment.started_at is None
    assert rolled_back(running).experiment.started_at is None
    assert [(v.bento, v.weight) for v in rolled_back(second).variants] == [("m:a", 100)]
    with pytest.raises(StateError, match="no challenger to promote"):
        promoted(first)
    staging = parse_state(
        {"environment": "staging", "variants": variants(("champion", "m:a", 100))}, Path("x")
    )
    assert [v.bento for v in released(staging, "m:b").variants] == ["m:b"]


def test_a_rolled_back_model_is_not_released_again_by_a_later_push(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """After a rollback main still carries the rejected model: a push must not re-release it.

    (A state merge, a README edit: release.yml runs on every push to main.)
    """
    from scripts.cd.reconcile import release_needed

    B, C = "b" * 16, "c" * 16

    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    production = parse_state({"environment": "production", "on_release": "challenger"}, Path("x"))
    experiment = released(released(production, "m:a", digest="a" * 16), "m:b", digest=B)
    assert release_needed(experiment, B) is False  # it is serving
    decided = rolled_back(experiment)
    assert decided.rolled_back == [B]
    assert [v.bento for v in decided.variants] == ["m:a"]
    assert release_needed(decided, B) is False
    assert "was rolled back from production by an A/B decision" in capsys.readouterr().out
    assert release_needed(decided, C) is True  # a new model releases
    # The list survives a save and a load, bounded, the latest last.
    many = decided.model_copy(update={"rolled_back": [f"{i:016x}" for i in range(20)]})
    again = rolled_back(released(many, "m:c", digest=C))
    assert again.rolled_back == [*(f"{i:016x}" for i in range(1, 20)), C]
    save_state(again, tmp_path / "production.yaml")
    assert load_state(tmp_path / "production.yaml").rolled_back == again.rolled_back
