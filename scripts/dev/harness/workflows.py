"""Reading workflow files: which events start them, their jobs, environments, groups, scopes.

Pure functions over the YAML (no act, no git), tested in ``make test-fast``. act ignores
``on:`` filters, environments, concurrency and ``permissions:``; the harness decides from
these readings what GitHub would (docs/harness.md).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EVENT_TRIGGERS = {"pull_request", "push", "schedule", "workflow_dispatch", "repository_dispatch"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(path: Path) -> dict[Any, Any]:
    """A workflow file as data."""
    document: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def event_filters(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """A workflow's ``on:`` as ``{event: its filters or None}`` (YAML reads ``on`` as True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def triggers(workflow: Mapping[Any, Any]) -> set[str]:
    """The events of a workflow's ``on:``."""
    return set(event_filters(workflow))


def workflows_for(root: Path, event: str) -> list[Path]:
    """Workflow files that ``event`` triggers."""
    return [
        path
        for path in sorted(root.glob(".github/workflows/*.yml"))
        if event in triggers(load(path))
    ]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern as a regex: ``**`` crosses folders, ``*`` and ``?`` do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    table = {"**": ".*", "**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts) + r"\Z")


def matches(patterns: Iterable[str], value: str) -> bool:
    """Whether ``value`` matches one of GitHub's filter ``patterns``."""
    return any(_glob_regex(pattern).match(value) for pattern in patterns)


def triggered_workflows(root: Path, event: str, changed: Sequence[str], branch: str) -> list[str]:
    """Workflow files GitHub starts for ``event`` on ``branch`` changing ``changed`` files.

    ``branch`` is the pushed branch (push) or the base branch (pull_request); for a
    ``repository_dispatch``, ``changed`` holds its event_type, which ``types`` filters; for
    a ``workflow_run``, ``changed`` holds the completed run's workflow name, which
    ``workflows`` filters (only ``completed`` runs are modelled), and ``branch`` its head
    branch.
    ``branches``, ``paths`` and ``paths-ignore`` filter as on GitHub ("Workflow syntax",
    filter pattern cheat sheet); act ignores them, so the harness decides which run.
    """
    started = []
    for path in sorted(root.glob(".github/workflows/*.yml")):
        config = event_filters(load(path))
        if event not in config:
            continue
        filters = config[event] or {}
        if "types" in filters and event == "repository_dispatch":
            # `types` filters a dispatch's event_type; the harness passes it as `changed`.
            if not set(filters["types"]) & set(changed):
                continue
            started.append(path.name)
            continue
        if event == "workflow_run" and not (
            set(filters.get("workflows") or ()) & set(changed)
            and "completed" in filters.get("types", ["completed"])
        ):
            continue
        if "branches" in filters and not matches(filters["branches"], branch):
            continue
        if "paths" in filters and not any(matches(filters["paths"], f) for f in changed):
            continue
        ignored = filters.get("paths-ignore")
        if ignored and all(matches(ignored, f) for f in changed):
            continue
        started.append(path.name)
    return started


MATRIX_REFERENCE = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")


def matrix_rows(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The jobs a matrix expands to, one mapping of its keys each (``[{}]``: no matrix).

    The product of its list-valued keys; an ``include`` entry extends the rows it does not
    contradict, else adds a row of its own (GitHub docs, "Expanding or adding matrix
    configurations").
    """
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    axes = {k: v for k, v in matrix.items() if k != "include" and isinstance(v, list)}
    combos = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    combos = combos if axes else []
    added: list[dict[str, Any]] = []
    for extra in matrix.get("include") or []:
        # Only the axes' combinations take an include; one no combination takes is a row
        # of its own, and no later include extends it.
        matched = [
            r for r in combos if all(r.get(k, v) == v for k, v in extra.items() if k in axes)
        ]
        for row in matched:
            row.update(extra)
        if not matched:
            added.append(dict(extra))
    rows = combos + added
    return [{str(k): str(v) for k, v in row.items()} for row in rows] or [{}]


def substitute(text: str, row: Mapping[str, str]) -> str:
    """``text`` with each ``${{ matrix.K }}`` replaced by the row's value of K."""
    return MATRIX_REFERENCE.sub(lambda m: row.get(m[1], m[0]), text)


def _target(job: Mapping[str, Any]) -> str | None:
    target = job.get("environment")
    target = target.get("name") if isinstance(target, dict) else target
    return target if isinstance(target, str) else None


def job_environments(job: Mapping[str, Any]) -> set[str]:
    """The deployment environments a job targets.

    ``environment:`` may be a name or ``{name: ...}``; ``${{ matrix.K }}`` in it takes the
    value of each row of the job's matrix (:func:`matrix_rows`).
    """
    target = _target(job)
    if target is None:
        return set()
    found = {substitute(target, row) for row in matrix_rows(job)}
    return {name for name in found if "${{" not in name}


def matrix_row(job: Mapping[str, Any], value: str) -> dict[str, str]:
    """The row of the job's matrix that ``value`` names (a value of any key; ``{}``: none)."""
    for row in matrix_rows(job):
        if value in row.values():
            return row
    return {}


def environment_groups(root: Path) -> dict[str, set[str]]:
    """Per deployment environment, the concurrency groups of the jobs that target it.

    Jobs in different groups run at the same time (GitHub docs, "Using concurrency"); a job
    without a group is its own (``(none) workflow/job``). In a matrix job, ``${{ matrix.K }}``
    takes each row's value; other expressions are kept as written.
    """
    groups: dict[str, set[str]] = {}
    for path in sorted(root.glob(".github/workflows/*.yml")):
        workflow = load(path)
        default = workflow.get("concurrency")
        for name, job in workflow["jobs"].items():
            target = _target(job)
            if target is None:
                continue
            concurrency = job.get("concurrency", default)
            group = concurrency.get("group") if isinstance(concurrency, dict) else concurrency
            for row in matrix_rows(job):
                environment = substitute(target, row)
                if "${{" in environment:
                    continue
                text = substitute(str(group), row) if group else f"(none) {path.name}/{name}"
                groups.setdefault(environment, set()).add(text)
    return groups


def job_ids(path: Path) -> list[str]:
    """The job ids of a workflow file."""
    return list(load(path)["jobs"])


def waiting_jobs(path: Path, protected: set[str], only: str | None = None) -> list[str]:
    """Jobs of a workflow that target a protected environment (they wait for a reviewer)."""
    waiting = []
    for name, job in load(path)["jobs"].items():
        if only is not None and name != only:
            continue
        if job_environments(job) & protected:
            waiting.append(name)
    return waiting


@dataclass(frozen=True)
class Concurrency:
    """A job's concurrency group as GitHub evaluates it for one run.

    Attributes:
        group: The group's name (``${{ matrix.K }}`` resolved; other expressions as written).
        cancel_in_progress: ``cancel-in-progress`` (an expression counts as true for
            ``pull_request`` when it names ``github.event_name == 'pull_request'``).
        queue: ``single`` (GitHub's default: one pending entry) or ``max`` (up to 100).
    """

    group: str
    cancel_in_progress: bool = False
    queue: str = "single"


def _concurrency(value: object, event: str) -> Concurrency | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Concurrency(value)
    spec = dict(value)  # type: ignore[call-overload]  # a mapping in a valid workflow
    cancel = spec.get("cancel-in-progress", False)
    if isinstance(cancel, str):
        expression = EXPRESSION.fullmatch(cancel.strip())
        inner = expression[1] if expression else cancel
        cancel = inner == f"github.event_name == '{event}'" or inner == "true"
    return Concurrency(str(spec["group"]), bool(cancel), str(spec.get("queue", "single")))


def workflow_concurrency(path: Path, event: str) -> Concurrency | None:
    """The group a whole run of the workflow enters for ``event`` (None: no group).

    One entry per run, held until every job of the run is done.
    """
    return _concurrency(load(path).get("concurrency"), event)


def job_concurrency(path: Path, job: str, event: str, environment: str = "") -> Concurrency | None:
    """The job-level group ``job`` enters for ``event`` (None: none of its own).

    A job-level group is entered by the job alone; the run's workflow-level group
    (:func:`workflow_concurrency`) applies as well. ``${{ matrix.K }}`` in the group takes
    the values of the matrix row that ``environment`` names (:func:`matrix_row`).
    """
    spec = load(path)["jobs"][job]
    found = _concurrency(spec.get("concurrency"), event)
    if found is None or not environment:
        return found
    group = substitute(found.group, matrix_row(spec, environment) or {"": ""})
    group = MATRIX_REFERENCE.sub(environment, group)  # a job without that matrix key
    return Concurrency(group, found.cancel_in_progress, found.queue)


def job_scopes(path: Path) -> dict[str, object]:
    """Each job's ``permissions:`` (its own, else the workflow's; None when neither sets any)."""
    workflow = load(path)
    default = workflow.get("permissions")
    return {name: job.get("permissions", default) for name, job in workflow["jobs"].items()}


def run_commands(path: Path, job: str) -> list[str]:
    """The ``run:`` scripts of a job's steps, in order (composite actions not expanded)."""
    steps = load(path)["jobs"][job].get("steps") or []
    return [str(step["run"]) for step in steps if "run" in step]


def check_names(path: Path) -> dict[str, str]:
    """Each job's check name, which branch protection's required checks match.

    GitHub names a job's check run after its ``name:`` (the job id without one); a name
    with an expression (a matrix job's) is rendered per run, which this reading does not
    do: the job id stands for it.
    """
    names = {}
    for job, spec in load(path)["jobs"].items():
        name = spec.get("name")
        names[job] = job if not name or "${{" in str(name) else str(name)
    return names


def event_ref(event: str, payload: Mapping[str, Any], branch: str) -> str:
    """``github.ref`` of a run: a PR's merge ref, the pushed or dispatched branch, else main.

    The default branch for ``schedule``, ``repository_dispatch`` and ``workflow_run``
    (GitHub docs, "Events that trigger workflows": GITHUB_REF "Default branch"); a
    ``workflow_dispatch`` runs on the branch it names. This is what an environment's
    deployment-branch policy judges.
    """
    if event == "pull_request":
        return f"refs/pull/{int(payload.get('number', 1))}/merge"
    if event in ("push", "workflow_dispatch"):
        return f"refs/heads/{branch}"
    return "refs/heads/main"
