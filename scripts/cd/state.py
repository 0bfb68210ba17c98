"""The desired deployment state kept in git: ``bentos/deployments/<environment>.yaml``.

One file per environment: the variants (``champion`` and, during an A/B experiment,
``challenger``; each a Bento tag and a traffic weight), the experiment settings the
promotion decision uses, and the routing. Every change — a release adding a challenger,
a promotion, a rollback — is an edit of this file, committed or proposed as a PR;
``python -m scripts.deploy apply`` (:mod:`scripts.cd.reconcile`) reconciles the running
system to it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.params import format_errors

STATE_DIR = Path("bentos/deployments")
ROLES = ("champion", "challenger")
BENTO_TAG = r"^[a-z0-9][a-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StateError(ValueError):
    """The state file breaks a rule; the message names the file, the key and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    """A Bento serving a share of the traffic."""

    name: Literal["champion", "challenger"]
    bento: Annotated[str, Field(pattern=BENTO_TAG)]
    weight: Annotated[int, Field(ge=0, le=100)]
    # What the Bento serves (model and code; scripts.cd.bento_store.content_digest): a
    # release of the same content changes nothing.
    digest: Annotated[str | None, Field(pattern=r"^[0-9a-f]{16}$")] = None


class Guardrails(_Strict):
    """How much worse than the champion the challenger may be before it is rolled back."""

    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p95_latency_ratio: Annotated[float, Field(ge=1)] = 1.5
    min_requests: Annotated[int, Field(ge=1)] = 200
    # One-sided confidence a breach needs before it rolls back (each guardrail, each hourly
    # look): latency and errors are noisy, two point estimates are not evidence. The
    # false-rollback rate it gives is measured in docs/ab-testing.md.
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.99


class Experiment(_Strict):
    """The A/B test: what is compared, how much data it needs, and its error rate."""

    primary_metric: Literal["accuracy"] = "accuracy"
    min_samples_per_arm: Annotated[int, Field(ge=1)] = 1000
    max_duration_hours: Annotated[float, Field(gt=0)] = 168.0
    significance_level: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    # Standard deviation of the mixing distribution of the mSPRT (the effect sizes the
    # test is most sensitive to); see docs/ab-testing.md.
    mixture_sd: Annotated[float, Field(gt=0, le=1)] = 0.05
    challenger_weight: Annotated[int, Field(ge=1, le=99)] = 10
    guardrails: Guardrails = Guardrails()
    # When the running experiment started (UTC), written by the release that started it:
    # the decision reads it from git, so it needs no machine's local record.
    started_at: dt.datetime | None = None


class Routing(_Strict):
    """How requests reach the variants."""

    sticky_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "X-User-Id"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080


ROLLED_BACK_KEPT = 20


class DeploymentState(_Strict):
    """One environment's desired state."""

    environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]
    driver: Literal["local", "kubernetes"] = "local"
    # What a release does here: replace the champion (staging) or start an A/B experiment
    # with the new Bento as challenger (production).
    on_release: Literal["replace", "challenger"] = "replace"
    # Empty until the first release.
    variants: Annotated[list[Variant], Field(max_length=2)] = []
    experiment: Experiment = Experiment()
    routing: Routing = Routing()
    # Content digests of challengers an A/B decision rolled back (the latest last): a later
    # push to main that still carries that model releases nothing (release-needed).
    rolled_back: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]], Field(max_length=ROLLED_BACK_KEPT)
    ] = []

    @model_validator(mode="after")
    def _check_variants(self) -> DeploymentState:
        names = [variant.name for variant in self.variants]
        if not names:
            return self
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate variant names: {names}")
        if "champion" not in names:
            raise ValueError(f"a variant named 'champion' is required, got {names}")
        total = sum(variant.weight for variant in self.variants)
        if total != 100:
            weights = {variant.name: variant.weight for variant in self.variants}
            raise ValueError(f"variant weights must sum to 100, got {total} ({weights})")
        return self

    def variant(self, name: str) -> Variant | None:
        """The variant with this name, if present."""
        return next((variant for variant in self.variants if variant.name == name), None)

    @property
    def champion(self) -> Variant | None:
        """The variant every request goes to when there is no experiment (None: not deployed)."""
        return self.variant("champion")

    @property
    def challenger(self) -> Variant | None:
        """The variant under test, if an experiment runs."""
        return self.variant("challenger")


def parse_state(raw: object, source: Path) -> DeploymentState:
    """Validate a parsed state document.

    Raises:
        StateError: With one line per broken rule.
    """
    try:
        return DeploymentState.model_validate(raw)
    except ValidationError as error:
        raise StateError(format_errors(source, error)) from None


def state_path(environment: str, directory: Path = STATE_DIR) -> Path:
    """Where an environment's state file lives."""
    return directory / f"{environment}.yaml"


def load_state(path: Path) -> DeploymentState:
    """Read and validate a state file.

    Raises:
        StateError: When the file is missing, not YAML, or breaks a rule.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StateError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise StateError(f"{path}: not valid YAML: {error}") from None
    state = parse_state(raw, path)
    if state.environment != path.stem:
        raise StateError(
            f"{path}: environment: must match the file name {path.stem!r}, "
            f"got {state.environment!r}"
        )
    return state


HEADER = (
    "# Desired deployment state (GitOps): edited by releases, promotions and rollbacks,\n"
    "# reconciled by `python -m scripts.deploy apply`. Schema: scripts/cd/state.py.\n"
)


def save_state(state: DeploymentState, path: Path) -> None:
    """Write the state file (keys in schema order, defaults included)."""
    document = state.model_dump(mode="json", exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _with_variants(
    state: DeploymentState, variants: list[Variant], started_at: dt.datetime | None = None
) -> DeploymentState:
    experiment = state.experiment.model_copy(update={"started_at": started_at})
    return state.model_copy(update={"variants": variants, "experiment": experiment})


def serving(state: DeploymentState, digest: str) -> Variant | None:
    """The variant already serving content ``digest``, if any."""
    return next((v for v in state.variants if v.digest == digest), None)


def released(
    state: DeploymentState,
    bento: str,
    now: dt.datetime | None = None,
    digest: str | None = None,
) -> DeploymentState:
    """The state after a release of ``bento``, following ``on_release``.

    ``replace``: the Bento becomes the only variant. ``challenger``: it becomes the
    challenger at ``experiment.challenger_weight`` (replacing a running challenger; the
    experiment starts at ``now``) — unless it already is the champion or the challenger
    (no change: a running experiment goes on), or nothing is deployed yet (it becomes the
    champion).
    """
    champion, challenger = state.champion, state.challenger
    if bento in {variant.bento for variant in (champion, challenger) if variant is not None}:
        return state
    if digest is not None and serving(state, digest) is not None:
        return state
    if state.on_release == "replace" or champion is None:
        new = Variant(name="champion", bento=bento, weight=100, digest=digest)
        return _with_variants(state, [new])
    weight = state.experiment.challenger_weight
    return _with_variants(
        state,
        [
            champion.model_copy(update={"weight": 100 - weight}),
            Variant(name="challenger", bento=bento, weight=weight, digest=digest),
        ],
        (now or dt.datetime.now(dt.UTC)).replace(microsecond=0),
    )


def promoted(state: DeploymentState) -> DeploymentState:
    """The challenger becomes the only variant at 100."""
    challenger = state.challenger
    if challenger is None:
        raise StateError(f"{state.environment}: no challenger to promote")
    return _with_variants(
        state, [challenger.model_copy(update={"name": "champion", "weight": 100})]
    )


def rolled_back(state: DeploymentState) -> DeploymentState:
    """The challenger is removed; the champion takes all the traffic.

    Its content digest joins ``rolled_back``: main still carries that model until a new
    one is merged, and a push meanwhile must not release it again.
    """
    champion, challenger = state.champion, state.challenger
    if champion is None or challenger is None:
        raise StateError(f"{state.environment}: no experiment to roll back")
    updated = _with_variants(state, [champion.model_copy(update={"weight": 100})])
    if challenger.digest is None or challenger.digest in state.rolled_back:
        return updated
    rejected = [*state.rolled_back, challenger.digest][-ROLLED_BACK_KEPT:]
    return updated.model_copy(update={"rolled_back": rejected})
