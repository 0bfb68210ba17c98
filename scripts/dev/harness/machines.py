"""The machine each job lands on: runner labels, machine roots, and cache keys per machine.

Pure functions over workflow and action files (docs/harness.md, "Machines"): GitHub-hosted
labels get a new machine per job, a self-hosted label set one lasting machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.workflows import EXPRESSION, load

# Two runner kinds the workflows land on (docs/harness.md, "Machines"): a GitHub-hosted
# Ubuntu image and a self-hosted Debian GPU box; their Pythons live in different places.
MACHINES: dict[str, dict[str, str]] = {
    "github-hosted": {
        "runner.os": "Linux",
        "runner.arch": "X64",
        "runner.environment": "github-hosted",
        "python-version": "3.11.14",
        "python-path": "/opt/hostedtoolcache/Python/3.11.14/x64/bin/python3",
    },
    "self-hosted": {
        "runner.os": "Linux",
        "runner.arch": "X64",
        "runner.environment": "self-hosted",
        "python-version": "3.11.2",
        "python-path": "/usr/bin/python3.11",
    },
}


def evaluate_key(template: str, machine: Mapping[str, str], inputs: Mapping[str, str]) -> str:
    """An ``actions/cache`` key as a given machine computes it.

    ``runner.*`` come from the machine, ``inputs.*`` from ``inputs``, a step output named
    ``python-version`` is the machine's Python; ``hashFiles(...)`` is the same everywhere
    (the same commit). Anything else stays as written, the same on every machine.
    """

    def value(match: re.Match[str]) -> str:
        expression = match[1]
        if expression in machine:
            return machine[expression]
        if expression.startswith("inputs."):
            return inputs.get(expression.removeprefix("inputs."), "")
        if expression.startswith("steps.") and expression.endswith(".outputs.python-version"):
            return machine["python-version"]
        if expression.startswith("hashFiles("):
            return "<hash of the commit's files>"
        return match[0]

    return EXPRESSION.sub(value, template)


def cache_keys(action: Path) -> list[tuple[str, dict[str, str]]]:
    """The ``actions/cache`` steps of a composite action: their key and the action's inputs."""
    document = yaml.safe_load(action.read_text(encoding="utf-8"))
    inputs = {
        name: str(spec.get("default", "")) for name, spec in (document.get("inputs") or {}).items()
    }
    return [
        (str(step["with"]["key"]), inputs)
        for step in document["runs"]["steps"]
        if str(step.get("uses", "")).startswith("actions/cache@")
    ]


RUNS_ON_VARIABLE = re.compile(r"^fromJSON\(\s*vars\.(\w+)\s*\|\|\s*'(.*)'\s*\)$")
# A job that sends a fork's pull request elsewhere: ``fromJSON(FORK && '[labels]' || ...)``.
FORK_CONDITION = (
    "(github.event.pull_request && "
    "github.event.pull_request.head.repo.full_name != github.repository)"
)
RUNS_ON_FORK = re.compile(r"^fromJSON\(\s*(\(.*?\))\s*&&\s*'(\[.*?\])'\s*\|\|\s*(.*)\)$")


def runner_labels(runs_on: object, variables: Mapping[str, str], fork: bool = False) -> list[str]:
    """A job's ``runs-on`` labels, its expression evaluated for this event.

    Two forms are understood: ``${{ fromJSON(vars.X || '[...]') }}`` and the same preceded
    by ``FORK_CONDITION && '[...]' ||`` (a fork's PR goes to the first list). Any other
    expression is an error rather than a guess.

    Raises:
        ActError: For an expression of another form.
    """
    if isinstance(runs_on, list):
        return [str(label) for label in runs_on]
    text = str(runs_on).strip()
    whole = EXPRESSION.fullmatch(text)
    if not whole:
        return [text]
    expression = whole[1]
    forked = RUNS_ON_FORK.match(expression)
    if forked:
        if " ".join(forked[1].split()) != FORK_CONDITION:
            raise ActError(f"runs-on: unsupported condition {forked[1]!r}")
        if fork:
            return [str(label) for label in json.loads(forked[2])]
        expression = f"fromJSON({forked[3].strip()})"
    match = RUNS_ON_VARIABLE.match(expression)
    if not match:
        raise ActError(f"runs-on: unsupported expression {text!r}")
    value = json.loads(variables.get(match[1]) or match[2])
    return [str(label) for label in (value if isinstance(value, list) else [value])]


def self_hosted_jobs(path: Path, variables: Mapping[str, str], fork: bool = False) -> set[str]:
    """Jobs of a workflow whose labels send them to a self-hosted runner."""
    jobs = load(path)["jobs"]
    return {
        name
        for name, job in jobs.items()
        if "self-hosted" in runner_labels(job.get("runs-on", ""), variables, fork)
    }


def machine_roots(
    path: Path, variables: Mapping[str, str], machines: Path, run: str, fork: bool = False
) -> dict[str, Path]:
    """The machine each job of a workflow lands on: its root folder (HOME, tool cache).

    Hosted labels get a new machine per job (``hosted-<run>-<job>``); a self-hosted label
    set is one lasting machine (``self-hosted-<labels>``), shared by every job with the same
    labels across runs, as a real runner's root is; different label sets never share.
    """
    roots = {}
    for name, job in load(path)["jobs"].items():
        labels = runner_labels(job.get("runs-on", ""), variables, fork)
        if "self-hosted" in labels:
            roots[name] = machines / ("self-hosted-" + "-".join(sorted(set(labels))))
        else:
            roots[name] = machines / f"hosted-{run}-{name}"
    return roots


def machine_env(roots: Mapping[str, Path]) -> dict[str, str]:
    """``GITOPS_ML_MACHINE_<JOB>`` per job, for the bash wrapper in ``.github/act/machine``."""
    return {
        "GITOPS_ML_MACHINE_" + re.sub(r"[^A-Za-z0-9]", "_", job).upper(): str(root)
        for job, root in roots.items()
    }
