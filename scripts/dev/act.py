"""Run the real workflow files locally with nektos/act, in host mode, in a sandbox clone.

``python -m scripts.dev.act EVENT [--workflow FILE]... [--expect JOB]...`` (``make act-pr``,
``make act-main``, ``make act-schedule``):

* **Sandbox**: a temporary clone of the checkout (tracked and untracked-but-not-ignored
  files) whose ``origin`` is a local bare repository with a ``main`` branch, and whose DVC
  remote is a local folder — diffs against main and ``dvc push``/``pull`` are real.
* **act**: every ``runs-on`` label is mapped to ``-self-hosted`` (host mode, no Docker);
  marketplace actions are mapped with ``--local-repository`` to the stand-ins in
  ``.github/act/actions`` (an action without one is an error, not a silent skip); the
  artifact and cache servers bind to 127.0.0.1; event payloads are generated.
* **GitHub's API**: recording stand-ins for ``cml`` and ``gh`` (``.github/act/bin``) come
  first on PATH and write what would have been posted to ``<sandbox>/record/github.json``;
  services that outlive their job (the retraining relay) reach an HTTP stand-in
  (:mod:`scripts.dev.github_api`) whose accepted ``repository_dispatch`` events
  ``Sandbox.deliver_dispatches`` turns into runs on main.
* **Skipped jobs**: act silently skips a job whose label has no mapping. Each workflow runs
  on its own and the jobs that reported a result are compared with the expected ones; a
  missing job fails the run.
* **GitHub's rules** (docs/harness.md): each job gets the machine its labels would (a
  ``bash`` wrapper first on PATH gives it that machine's HOME and tool cache: fresh per job
  for hosted labels, lasting per self-hosted label set) and a fresh checkout of the event's
  commit (``refs/pull/N/merge`` for a PR); each act run carries its own
  ``RUNNER_TRACKING_ID`` and, when a job ends, every process that job started with it is
  terminated, as the runner does (:mod:`scripts.dev.runner`). The ``gh`` stand-in refuses a
  pull request made with the workflow's ``GITHUB_TOKEN`` unless the repository setting
  allows it (``Sandbox.settings``, off by default, as on GitHub) and records which token
  made each change; the origin records who made each push, and only events not made with
  ``GITHUB_TOKEN`` start further workflows (``Sandbox.follow_up``). A fork's PR gets a
  read-only token and no secrets, and must not reach a self-hosted job. A job targeting an
  environment with required reviewers (``Sandbox.protected``) waits: the run fails unless
  a reviewer approved it (``Sandbox.approved``). The setup-cml stand-in fails as the real
  action does without ``vega: false``. Unset ``vars.*`` and secrets are empty strings, as
  act does. A scenario may relax a rule by name (``Sandbox.relax``), saying why.

The project's environment is reused by the jobs (``VENV``), as actions/cache would restore it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.dev.github_api import read_dispatches, serve, url_of
from scripts.dev.runner import cleanup_job, new_tracking_id
from scripts.dev.s3 import S3Endpoint, S3ServerError, s3_server
from scripts.dev.workspace import PROJECT_ROOT, copy_project, edit_yaml, tool_env

STANDINS = PROJECT_ROOT / ".github" / "act"
# Marketplace actions and their local stand-ins.
ACTION_STANDINS = {
    "actions/checkout": "checkout",
    "actions/setup-python": "setup-python",
    "actions/cache": "cache",
    "actions/upload-artifact": "upload-artifact",
    "actions/download-artifact": "download-artifact",
    "iterative/setup-cml": "setup-cml",
    "docker/login-action": "docker-login",
    "actions/create-github-app-token": "create-github-app-token",
}
# Labels of GitHub-hosted and self-hosted runners the workflows may name.
RUNNER_LABELS = (
    "ubuntu-latest",
    "ubuntu-24.04",
    "ubuntu-22.04",
    "self-hosted",
    "linux",
    "x64",
    "gpu",
    "deploy",
)
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)(?:/[\w./-]+)?@([0-9a-f]{40})")
EVENT_TRIGGERS = {"pull_request", "push", "schedule", "workflow_dispatch", "repository_dispatch"}
REPOSITORY = "gitops-ml/sandbox"
ACT_TIMEOUT_S = 1800
# How many rounds of events made by workflow runs the dispatcher follows.
MAX_FOLLOW_UPS = 5
# The secret act hands the workflows as GITHUB_TOKEN: the gh stand-in applies GitHub's rules
# for that token (no PR unless the repository allows it; its events trigger no workflow).
WORKFLOW_TOKEN = "act-sandbox-token"
# A fork's pull request gets a read-only GITHUB_TOKEN and no other secret.
READ_ONLY_TOKEN = "act-sandbox-read-only-token"
# What the deploy runner gives the retraining relay (a file, GITOPS_ML_DISPATCH_TOKEN_FILE):
# a token the GitHub API stand-in knows as an App's.
DISPATCH_TOKEN = "act-sandbox-dispatch-token"
FORK = "someone/sandbox"
# Repository settings as a new repository has them (Settings -> Actions -> General).
DEFAULT_SETTINGS = {"actions_can_create_pull_requests": False}
# GitHub behaviours the harness models that a scenario may relax, each by name (docs/harness.md).
RULES = {
    "orphan-cleanup": "the runner terminates a job's processes when the job ends",
    "setup-cml-canvas": "iterative/setup-cml@v2.0.1 fails installing canvas@2 unless vega: false",
}


class ActError(RuntimeError):
    """The harness could not run act as asked; the message says why."""


def action_pins(root: Path) -> set[tuple[str, str]]:
    """``(owner/repo, sha)`` of every pinned action used by workflows and local actions."""
    files = [*root.glob(".github/workflows/*.yml"), *root.glob(".github/actions/*/action.yml")]
    return {(match[1], match[2]) for path in files for match in USES.finditer(path.read_text())}


def local_repository_args(root: Path) -> list[str]:
    """``--local-repository`` for each pinned action; an action without a stand-in fails."""
    args: list[str] = []
    for repo, sha in sorted(action_pins(root)):
        if repo not in ACTION_STANDINS:
            raise ActError(f"{repo}@{sha}: no stand-in; add one under {STANDINS / 'actions'}")
        args += [
            "--local-repository",
            f"{repo}@{sha}={STANDINS / 'actions' / ACTION_STANDINS[repo]}",
        ]
    return args


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
        if event in triggers(yaml.safe_load(path.read_text(encoding="utf-8")))
    ]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern as a regex: ``**`` crosses folders, ``*`` and ``?`` do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    table = {"**": ".*", "**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts) + r"\Z")


def _matches(patterns: Iterable[str], value: str) -> bool:
    return any(_glob_regex(pattern).match(value) for pattern in patterns)


def triggered_workflows(root: Path, event: str, changed: Sequence[str], branch: str) -> list[str]:
    """Workflow files GitHub starts for ``event`` on ``branch`` changing ``changed`` files.

    ``branch`` is the pushed branch (push) or the base branch (pull_request); for a
    ``repository_dispatch``, ``changed`` holds its event_type, which ``types`` filters.
    ``branches``, ``paths`` and ``paths-ignore`` filter as on GitHub ("Workflow syntax",
    filter pattern cheat sheet); act ignores them, so the harness decides which run.
    """
    started = []
    for path in sorted(root.glob(".github/workflows/*.yml")):
        config = event_filters(yaml.safe_load(path.read_text(encoding="utf-8")))
        if event not in config:
            continue
        filters = config[event] or {}
        if "types" in filters and event == "repository_dispatch":
            # `types` filters a dispatch's event_type; the harness passes it as `changed`.
            if not set(filters["types"]) & set(changed):
                continue
            started.append(path.name)
            continue
        if "branches" in filters and not _matches(filters["branches"], branch):
            continue
        if "paths" in filters and not any(_matches(filters["paths"], f) for f in changed):
            continue
        ignored = filters.get("paths-ignore")
        if ignored and all(_matches(ignored, f) for f in changed):
            continue
        started.append(path.name)
    return started


def job_environments(job: Mapping[str, Any]) -> set[str]:
    """The deployment environments a job targets.

    ``environment:`` may be a name or ``{name: ...}``; an expression (``${{ matrix.x }}``)
    stands for every value of the job's matrix.
    """
    target = job.get("environment")
    target = target.get("name") if isinstance(target, dict) else target
    if not isinstance(target, str):
        return set()
    if "${{" not in target:
        return {target}
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    return {str(v) for values in matrix.values() if isinstance(values, list) for v in values}


def environment_groups(root: Path) -> dict[str, set[str]]:
    """Per deployment environment, the concurrency groups of the jobs that target it.

    Jobs in different groups run at the same time (GitHub docs, "Using concurrency"); a job
    without a group is its own (``(none) workflow/job``). In a matrix job, ``${{ matrix.K }}``
    in the group takes the value that targets each environment; other expressions are
    kept as written.
    """
    groups: dict[str, set[str]] = {}
    for path in sorted(root.glob(".github/workflows/*.yml")):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        default = workflow.get("concurrency")
        for name, job in workflow["jobs"].items():
            concurrency = job.get("concurrency", default)
            group = concurrency.get("group") if isinstance(concurrency, dict) else concurrency
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            for environment in job_environments(job):
                text = str(group) if group else f"(none) {path.name}/{name}"
                for key, values in matrix.items():
                    if isinstance(values, list) and environment in map(str, values):
                        pattern = r"\$\{\{\s*matrix\." + re.escape(str(key)) + r"\s*\}\}"
                        text = re.sub(pattern, environment, text)
                groups.setdefault(environment, set()).add(text)
    return groups


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
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


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


def job_ids(path: Path) -> list[str]:
    """The job ids of a workflow file."""
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"])


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
    jobs = yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"]
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
    for name, job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].items():
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


def waiting_jobs(path: Path, protected: set[str], only: str | None = None) -> list[str]:
    """Jobs of a workflow that target a protected environment (they wait for a reviewer)."""
    waiting = []
    for name, job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].items():
        if only is not None and name != only:
            continue
        if job_environments(job) & protected:
            waiting.append(name)
    return waiting


@dataclass
class ActRun:
    """One act invocation of one workflow."""

    workflow: str
    event: str
    returncode: int
    jobs: dict[str, str]
    expected: list[str]
    log: Path
    seconds: float
    lines: list[dict[str, Any]] = field(repr=False, default_factory=list)
    # Per job, the processes the runner's orphan cleanup terminated when the job ended.
    cleaned: dict[str, list[int]] = field(default_factory=dict)
    # Security rules the run broke (e.g. a fork's code on a self-hosted runner).
    violations: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Expected jobs that reported no result (skipped or never started)."""
        return [job for job in self.expected if job not in self.jobs]

    @property
    def ok(self) -> bool:
        """Act succeeded, every expected job ran, and every job that ran succeeded."""
        return (
            self.returncode == 0
            and not self.missing
            and not self.violations
            and all(result == "success" for result in self.jobs.values())
        )

    def output(self, job: str | None = None) -> str:
        """The messages act logged (for one job, or all), one per line."""
        return "".join(
            str(line.get("msg", "")) + ("" if line.get("raw_output") else "\n")
            for line in self.lines
            if job is None or line.get("jobID") == job
        )

    def summary(self) -> str:
        """One line per expected or reported job."""
        rows = [f"{self.workflow} ({self.event}): act exit {self.returncode}, {self.seconds:.0f} s"]
        for job in dict.fromkeys([*self.expected, *self.jobs]):
            rows.append(f"  {job:<12} {self.jobs.get(job, 'NOT RUN (expected)')}")
        rows += [f"  VIOLATION: {violation}" for violation in self.violations]
        return "\n".join(rows)


def save_caches(root: Path, tracking_id: str, job: str, succeeded: bool) -> list[str]:
    """At the end of a job, what actions/cache's post step does: save under the primary key.

    The cache stand-in left one request per missed key (``<root>/cache-requests``) with the
    staging folder the job wrote through; a successful job's staging becomes the entry for
    that key unless one exists (entries are immutable); otherwise it is dropped.

    Returns:
        The keys saved.
    """
    saved: list[str] = []
    requests = root / "cache-requests"
    store = root / "cache-store"
    taken = {
        json.loads(meta.read_text(encoding="utf-8"))["key"] for meta in store.glob("*/meta.json")
    }
    for path in sorted(requests.glob("*.json")) if requests.is_dir() else []:
        request = json.loads(path.read_text(encoding="utf-8"))
        if request["tracking"] != tracking_id or request["job"] != job:
            continue
        path.unlink()
        staging = Path(request["staging"])
        if not succeeded or request["key"] in taken or not staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            continue
        entry = store / staging.name
        entry.mkdir(parents=True)
        staging.rename(entry / "paths")
        (entry / "meta.json").write_text(json.dumps({"key": request["key"]}), encoding="utf-8")
        taken.add(request["key"])
        saved.append(request["key"])
    return saved


def run_streaming(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    tracking_id: str,
    cleanup: bool = True,
    caches: Path | None = None,
) -> tuple[int, str, dict[str, list[int]]]:
    """Run act, reading its JSON log as it comes; at each job's end, what the runner does.

    Args:
        command: The act command line (with ``--json``).
        cwd: Where act runs.
        env: Its environment.
        tracking_id: The run's ``RUNNER_TRACKING_ID``.
        cleanup: Terminate each job's processes when it ends (the runner always does).
        caches: The sandbox root whose cache store the jobs' cache saves go to, if any.

    Returns:
        Act's exit status, its whole output, and the pids terminated per job.
    """
    cleaned: dict[str, list[int]] = {}
    output: list[str] = []
    with subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        watchdog = threading.Timer(ACT_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line)
                if not line.startswith("{") or '"jobResult"' not in line:
                    continue
                event = json.loads(line)
                job = str(event.get("jobID", ""))
                if caches is not None:
                    save_caches(caches, tracking_id, job, event["jobResult"] == "success")
                if cleanup:
                    cleaned.setdefault(job, []).extend(cleanup_job(tracking_id, job))
            returncode = process.wait()
        finally:
            watchdog.cancel()
    if cleanup:  # a job act never reported (cancelled, crashed)
        leftovers = cleanup_job(tracking_id)
        if leftovers:
            cleaned.setdefault("(after the run)", []).extend(leftovers)
    return returncode, "".join(output), cleaned


@dataclass
class Sandbox:
    """A clone with a bare ``origin`` and a local DVC remote, where act runs."""

    root: Path
    # Extra environment for every job (e.g. the deployment ports a test chose).
    job_env: dict[str, str] = field(default_factory=dict)
    # Repository settings the GitHub stand-in enforces (DEFAULT_SETTINGS: GitHub's defaults).
    settings: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    # Rules of RULES turned off, each with why (the defect scenario and issue that fix it).
    relaxed: dict[str, str] = field(default_factory=dict)
    # Environments whose protection rules require a reviewer; a job targeting one waits.
    protected: set[str] = field(default_factory=set)
    # Environments a reviewer approved for the next run.
    approved: set[str] = field(default_factory=set)
    # Repository variables (``vars.*``) and secrets every run gets (a fork's PR: no secret).
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    # What the developer's own commands (run, make) get to reach the DVC storage; the
    # workflows get it only through ``secrets``.
    storage_env: dict[str, str] = field(default_factory=dict)
    # Open pull requests people opened here: head branch -> number.
    pull_requests: dict[str, int] = field(default_factory=dict)
    # The GitHub API stand-in over HTTP (scripts/dev/github_api.py), for services.
    api_server: Any = None
    # Repository dispatches already turned into workflow runs.
    dispatches_delivered: int = 0
    # Workflows the dispatcher never starts, each with why.
    skip: dict[str, str] = field(
        default_factory=lambda: {"ci.yml": "runs make test, i.e. the suite that runs the harness"}
    )

    @contextlib.contextmanager
    def enforcing(self, *rules: str) -> Iterator[None]:
        """Within the block, ``rules`` (default: every rule, and GitHub's default settings) hold.

        What was relaxed or set before comes back afterwards.
        """
        relaxed, settings = dict(self.relaxed), dict(self.settings)
        for rule in rules or tuple(self.relaxed):
            self.relaxed.pop(rule, None)
        if not rules:
            self.settings.update(DEFAULT_SETTINGS)
        try:
            yield
        finally:
            self.relaxed, self.settings = relaxed, settings

    def relax(self, rule: str, why: str) -> None:
        """Turn one modelled rule off, saying why (it shows in every run's summary)."""
        if rule not in RULES:
            raise ActError(f"unknown rule {rule!r}: one of {', '.join(sorted(RULES))}")
        self.relaxed[rule] = why

    @property
    def api_url(self) -> str:
        """The GitHub API stand-in's base URL."""
        return url_of(self.api_server) if self.api_server is not None else ""

    @property
    def work(self) -> Path:
        """The working copy act runs in."""
        return self.root / "work"

    @property
    def record(self) -> Path:
        """What the cml/gh stand-ins recorded."""
        return self.root / "record"

    @property
    def run_dir(self) -> Path:
        """Where deployments started by the workflows keep their state and logs."""
        return self.root / "run"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for commands in the working copy (no BentoML store override)."""
        env = {**tool_env(), "GIT_PAGER": "cat", "DVC_NO_ANALYTICS": "1", **extra}
        env.pop("BENTOML_HOME", None)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the working copy."""
        result = subprocess.run(
            list(args),
            cwd=self.work,
            env=self.env(**self.storage_env),
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise ActError(
                f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}"
            )
        return result

    def git(self, *args: str) -> str:
        """``git ARGS`` in the working copy; its stdout, stripped."""
        return self.run("git", *args).stdout.strip()

    def head(self, ref: str = "HEAD") -> str:
        """The commit sha of a reference."""
        return self.git("rev-parse", ref)

    def commit_all(self, message: str) -> str:
        """Commit every change; the new sha."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def push(self, branch: str) -> None:
        """Push a branch to the bare origin (and update origin/<branch>)."""
        self.git("push", "-q", "--force", "origin", f"{branch}:{branch}")
        self.git("fetch", "-q", "origin")

    def event_payload(self, event: str, **fields: Any) -> dict[str, Any]:
        """A minimal payload for ``event`` in the shape act and our scripts read."""
        repository = {"full_name": REPOSITORY, "name": "sandbox", "owner": {"login": "gitops-ml"}}
        if event == "pull_request":
            number = int(fields.get("number", 1))
            head_ref = self.git("rev-parse", "--abbrev-ref", "HEAD")
            base = fields.get("base", "main")
            return {
                "action": "synchronize",
                "number": number,
                "pull_request": {
                    "number": number,
                    "base": {"ref": base, "sha": self.head(f"origin/{base}")},
                    "head": {
                        "ref": head_ref,
                        "sha": self.head(),
                        "repo": {
                            "full_name": FORK if fields.get("fork") else REPOSITORY,
                            "fork": bool(fields.get("fork")),
                        },
                    },
                },
                "repository": repository,
            }
        if event == "push":
            before = fields.get("before") or "0" * 40
            return {
                "ref": f"refs/heads/{self.git('rev-parse', '--abbrev-ref', 'HEAD')}",
                "before": before,
                "after": self.head(),
                "repository": repository,
            }
        if event == "schedule":
            return {"schedule": fields.get("cron", "0 6 * * *"), "repository": repository}
        if event == "workflow_dispatch":
            return {"inputs": fields.get("inputs", {}), "repository": repository}
        if event == "repository_dispatch":
            return {
                "action": fields.get("event_type", ""),
                "branch": "main",
                "client_payload": fields.get("client_payload", {}),
                "repository": repository,
            }
        raise ActError(f"no payload for event {event!r} (one of {sorted(EVENT_TRIGGERS)})")

    def origin_git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``git ARGS`` in the bare origin."""
        return subprocess.run(
            ["git", "--git-dir", str(self.root / "origin.git"), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def publish_pull_request(self, number: int, base: str) -> str:
        """Push ``refs/pull/N/head`` and create ``refs/pull/N/merge`` in origin, as GitHub does.

        The merge commit is the PR's head merged into the base branch; a PR with conflicts
        gets no merge ref, and GitHub starts no ``pull_request`` run for it.

        Raises:
            ActError: When the PR conflicts with its base.
        """
        head = self.head()
        self.git("push", "-q", "--force", "origin", f"{head}:refs/pull/{number}/head")
        tip = self.origin_git("rev-parse", f"refs/heads/{base}").stdout.strip()
        merged = self.origin_git("merge-tree", "--write-tree", tip, head)
        if merged.returncode != 0:
            self.origin_git("update-ref", "-d", f"refs/pull/{number}/merge")
            raise ActError(
                f"PR #{number} conflicts with {base}: GitHub starts no pull_request run for it"
            )
        tree = merged.stdout.split()[0]
        commit = self.origin_git(
            "-c",
            "user.name=GitHub",
            "-c",
            "user.email=noreply@github.com",
            "commit-tree",
            tree,
            "-p",
            tip,
            "-p",
            head,
            "-m",
            f"Merge {head} into {tip}",
        ).stdout.strip()
        self.origin_git("update-ref", f"refs/pull/{number}/merge", commit)
        return commit

    def act(
        self,
        event: str,
        workflow: str,
        expect: Iterable[str] | None = None,
        variables: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        job: str | None = None,
        **payload: Any,
    ) -> ActRun:
        """Run one workflow file for ``event`` with act; see the module docstring."""
        path = self.work / ".github" / "workflows" / workflow
        if event not in triggers(yaml.safe_load(path.read_text(encoding="utf-8"))):
            raise ActError(f"{workflow} is not triggered by {event}")
        expected = list(expect) if expect is not None else [job] if job else job_ids(path)
        waiting = waiting_jobs(path, self.protected - self.approved, job)
        if waiting:
            raise ActError(
                f"{workflow}: job(s) {', '.join(waiting)} wait for a reviewer of a protected "
                "environment; GitHub holds the run until someone approves it"
            )
        self.approved.clear()
        if event in {"schedule", "repository_dispatch"}:
            # Both run on the latest commit of the default branch (GitHub docs, "Events that
            # trigger workflows": schedule, repository_dispatch), whatever is checked out.
            self.git("checkout", "-q", "main")
            self.git("reset", "-q", "--hard", "origin/main")
        fork = event == "pull_request" and bool(payload.get("fork"))
        variables = {**self.variables, **(variables or {})}
        if event == "pull_request":
            number = int(payload.get("number", 1))
            self.publish_pull_request(number, payload.get("base", "main"))
            self.pull_requests[self.git("rev-parse", "--abbrev-ref", "HEAD")] = number
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        stamp = f"{path.stem}-{event}-{len(list(logs.glob('*.jsonl'))):02d}"
        tracking_id = new_tracking_id()
        event_file = logs / f"{stamp}.event.json"
        event_file.write_text(json.dumps(self.event_payload(event, **payload)), encoding="utf-8")
        artifacts = self.root / "artifacts" / stamp
        command = [
            str(Path(sys.executable).parent / "act"),
            event,
            "--workflows",
            str(path.relative_to(self.work)),
            "--eventpath",
            str(event_file),
            "--json",
            "--artifact-server-addr",
            "127.0.0.1",
            "--cache-server-addr",
            "127.0.0.1",
            "--no-cache-server",
            # Our checkout stand-in, a fresh clone per job, instead of act's copy of the tree.
            "--no-skip-checkout",
            "--action-cache-path",
            str(self.root / "act-cache"),
            "--secret",
            f"GITHUB_TOKEN={READ_ONLY_TOKEN if fork else WORKFLOW_TOKEN}",
            # Else act derives it from origin's URL, here a local path.
            "--env",
            f"GITHUB_REPOSITORY={REPOSITORY}",
            # One id per run; act sets GITHUB_JOB per job, so the pair names a job.
            "--env",
            f"RUNNER_TRACKING_ID={tracking_id}",
        ]
        if job:
            command += ["--job", job]
        for label in RUNNER_LABELS:
            command += ["-P", f"{label}=-self-hosted"]
        command += local_repository_args(self.work)
        for key, value in variables.items():
            command += ["--var", f"{key}={value}"]
        for key, value in ({} if fork else self.secrets).items():
            command += ["--secret", f"{key}={value}"]
        machines = machine_roots(path, variables, self.root / "machines", stamp, fork)
        harness = {
            # The machine wrapper first: every step's bash takes its job's machine.
            "PATH": os.pathsep.join(
                [str(STANDINS / "machine"), str(STANDINS / "bin"), self.env()["PATH"]]
            ),
            **machine_env(machines),
            "VENV": sys.prefix,
            "GITOPS_ML_RECORD": str(self.record),
            "GITOPS_ML_ARTIFACTS": str(artifacts),
            "GITOPS_ML_STANDINS": str(STANDINS / "bin"),
            "GITOPS_ML_RUN_DIR": str(self.run_dir),
            "GITOPS_ML_WORKFLOW_TOKEN": WORKFLOW_TOKEN,
            "GITOPS_ML_READ_ONLY_TOKEN": READ_ONLY_TOKEN,
            "GITOPS_ML_ORIGIN": str(self.root / "origin.git"),
            "GITOPS_ML_CACHE_STORE": str(self.root / "cache-store"),
            "GITOPS_ML_RELAXED": ",".join(sorted(self.relaxed)),
            # The deploy runner's setup for the retraining relay (README, "Alert-triggered
            # retraining"): a token file, and here the GitHub API stand-in's URL.
            "GITOPS_ML_DISPATCH_TOKEN_FILE": str(self.root / "dispatch-token"),
            "GITOPS_ML_GITHUB_API": self.api_url,
        }
        # A scenario's own settings win (e.g. another machine's run directory and ports).
        job_env = self.env(**{**harness, **self.job_env, **(env or {})})
        self.record.mkdir(exist_ok=True)
        (self.record / "settings.json").write_text(json.dumps(self.settings), encoding="utf-8")
        started = time.monotonic()
        returncode, output, cleaned = run_streaming(
            command,
            self.work,
            job_env,
            tracking_id,
            cleanup="orphan-cleanup" not in self.relaxed,
            caches=self.root,
        )
        seconds = time.monotonic() - started
        (logs / f"{stamp}.jsonl").write_text(output, encoding="utf-8")
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        jobs = {line["jobID"]: line["jobResult"] for line in lines if "jobResult" in line}
        run = ActRun(
            workflow,
            event,
            returncode,
            jobs,
            expected,
            logs / f"{stamp}.jsonl",
            seconds,
            lines,
            cleaned,
        )
        if fork:
            hosted = self_hosted_jobs(path, variables, fork=True)
            run.violations += [
                f"job {name} ran a fork's pull request on a self-hosted runner"
                for name in run.jobs
                if name in hosted
            ]
        (logs / f"{stamp}.log").write_text(run.output(), encoding="utf-8")
        # GitHub shows a run's checks on the commit it ran for: a PR's head, the pushed commit.
        self.record_statuses(run, self.head())
        return run

    def pushes(self) -> list[dict[str, str]]:
        """Every push origin received, with who made it (``post_receive.py``)."""
        path = self.record / "pushes.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def follow_up(self, pushes_seen: int, pulls_seen: int, base: str = "main") -> list[ActRun]:
        """Start what GitHub would for the events made since: pushes to ``base`` and new PRs.

        An event made with the workflow's ``GITHUB_TOKEN`` (or a fork's read-only one)
        starts nothing; a person's, an App's or a PAT's starts the workflows whose filters
        match (GitHub docs, "Triggering a workflow from a workflow").
        """
        runs: list[ActRun] = []
        for push in self.pushes()[pushes_seen:]:
            if push["by"] in {"workflow", "read-only"}:
                continue
            branch = push["ref"].removeprefix("refs/heads/")
            if branch != base:
                # A push to an open PR's branch: GitHub runs its pull_request workflows.
                number = self.open_pull_request_number(branch)
                if number is not None:
                    self.git("fetch", "-q", "origin")
                    self.git("checkout", "-q", "-B", branch, f"origin/{branch}")
                    runs += self._pull_request_runs(branch, number, base)
                continue
            self.git("fetch", "-q", "origin")
            self.git("checkout", "-q", base)
            self.git("reset", "-q", "--hard", f"origin/{base}")
            changed = self.changed_files(push["before"], push["after"])
            names = triggered_workflows(self.work, "push", changed, base)
            runs += [
                self.act("push", name, before=push["before"])
                for name in names
                if name not in self.skip
            ]
        for pull in self.github()["pulls"][pulls_seen:]:
            if not pull.get("triggers_workflows"):
                continue
            self.git("fetch", "-q", "origin")
            self.git("checkout", "-q", "-B", pull["head"], f"origin/{pull['head']}")
            runs += self._pull_request_runs(pull["head"], int(pull["number"]), pull["base"])
        return runs

    def dispatches(self) -> list[dict[str, Any]]:
        """Every repository_dispatch the GitHub API stand-in accepted."""
        return read_dispatches(self.record)

    def deliver_dispatches(self) -> list[ActRun]:
        """Start what GitHub would for the dispatches made since the last delivery.

        Each runs the default branch's workflows whose ``repository_dispatch`` types
        include its event_type (a dispatch made even with a workflow's GITHUB_TOKEN starts
        them); then whatever those runs started in turn.
        """

        def runs() -> list[ActRun]:
            started: list[ActRun] = []
            new = self.dispatches()[self.dispatches_delivered :]
            self.dispatches_delivered += len(new)
            for dispatch in new:
                names = triggered_workflows(
                    self.work, "repository_dispatch", [dispatch["event_type"]], "main"
                )
                started += [
                    self.act(
                        "repository_dispatch",
                        name,
                        event_type=dispatch["event_type"],
                        client_payload=dispatch["client_payload"],
                    )
                    for name in names
                    if name not in self.skip
                ]
            return started

        return self._with_follow_ups(runs)

    def close_pull_request(self, branch: str) -> None:
        """A person closes the open PR from ``branch`` without merging it."""
        self._end_pull_requests(branch, "closed")

    def _end_pull_requests(self, branch: str, end: str) -> None:
        """The open PRs from ``branch`` are no longer open: ``merged`` or ``closed``."""
        self.pull_requests.pop(branch, None)
        state = self.github()
        for pull in state["pulls"]:
            if pull["head"] == branch and pull.get("state") == "open":
                pull["state"] = end
        if state["pulls"]:
            (self.record / "github.json").write_text(json.dumps(state, indent=2), encoding="utf-8")

    def wait_for_dispatches(self, timeout: float = 90.0) -> list[dict[str, Any]]:
        """The dispatches accepted so far, waiting up to ``timeout`` s for a first one.

        A service (the relay) sends them on its own schedule, not during a run.

        Raises:
            TimeoutError: When none arrived.
        """
        deadline = time.monotonic() + timeout
        while not self.dispatches():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no repository_dispatch within {timeout:.0f} s")
            time.sleep(0.5)
        return self.dispatches()

    def github_env(self, token: str | None = None) -> dict[str, str]:
        """The environment of a command run as a workflow step would, with ``token`` if any.

        The recording ``gh``/``cml`` stand-ins first on PATH, the sandbox's repository.
        """
        env = self.env(GITOPS_ML_RECORD=str(self.record), GITHUB_REPOSITORY=REPOSITORY)
        env["PATH"] = f"{STANDINS / 'bin'}{os.pathsep}{env['PATH']}"
        if token is not None:
            env["GH_TOKEN"] = token
        return env

    def open_pull_request_number(self, branch: str) -> int | None:
        """The number of the open PR from ``branch``, opened here or by a workflow."""
        if branch in self.pull_requests:
            return self.pull_requests[branch]
        for pull in self.github()["pulls"]:
            if pull["head"] == branch and pull.get("state", "open") == "open":
                return int(pull["number"])
        return None

    def changed_files(self, since: str, until: str = "HEAD") -> list[str]:
        """Files ``until`` changed since ``since`` (from their merge base, as a PR's diff)."""
        return self.git("diff", "--name-only", f"{since}...{until}").split()

    def open_pull_request(self, branch: str, number: int, base: str = "main") -> list[ActRun]:
        """A person pushes ``branch`` and opens PR #number: the workflows GitHub starts run.

        Which ones follows the ``pull_request`` filters (``triggered_workflows``), on the
        files the PR changes against its base; ``skip`` names the ones never started here.
        Then whatever those runs started in turn (:meth:`follow_up`).
        """
        self.git("checkout", "-q", branch)
        self.push(branch)
        return self._with_follow_ups(lambda: self._pull_request_runs(branch, number, base))

    def merge_pull_request(self, branch: str, message: str, base: str = "main") -> list[ActRun]:
        """A person merges ``branch``: the push to ``base`` starts its workflows on GitHub.

        A push made by a workflow with ``GITHUB_TOKEN`` would start none; a person's does.
        Then whatever those runs started in turn (:meth:`follow_up`).
        """
        before = self.merge(branch, message)

        def runs() -> list[ActRun]:
            changed = self.changed_files(before)
            names = triggered_workflows(self.work, "push", changed, base)
            return [
                self.act("push", name, before=before) for name in names if name not in self.skip
            ]

        return self._with_follow_ups(runs)

    def _pull_request_runs(self, branch: str, number: int, base: str) -> list[ActRun]:
        changed = self.changed_files(f"origin/{base}", branch)
        names = triggered_workflows(self.work, "pull_request", changed, base)
        return [
            self.act("pull_request", name, number=number, base=base)
            for name in names
            if name not in self.skip
        ]

    def _with_follow_ups(self, start: Callable[[], list[ActRun]]) -> list[ActRun]:
        seen = (len(self.pushes()), len(self.github()["pulls"]))
        runs = start()
        for _ in range(MAX_FOLLOW_UPS):
            now = (len(self.pushes()), len(self.github()["pulls"]))
            more = self.follow_up(*seen)
            seen = now
            if not more:
                break
            runs += more
        return runs

    def make(self, *targets: str) -> str:
        """``make TARGETS`` in the working copy with the project's environment; its output."""
        result = subprocess.run(
            ["make", *targets],
            cwd=self.work,
            env=self.env(VENV=sys.prefix, **self.storage_env),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ActError(
                f"make {' '.join(targets)} failed: {result.stdout[-2000:]}{result.stderr}"
            )
        return result.stdout + result.stderr

    def set_params(self, overrides: Mapping[str, object]) -> None:
        """Rewrite the working copy's params.yaml with dotted-key overrides."""
        edit_yaml(self.work / "params.yaml", overrides)

    def merge(self, ref: str, message: str) -> str:
        """Merge ``ref`` into main and push it; the commit main was at before.

        A pull request open from that branch is merged with it, as on GitHub.
        """
        self.git("checkout", "-q", "main")
        before = self.head()
        self.git("merge", "-q", "--no-ff", "-m", message, ref)
        self.push("main")
        self._end_pull_requests(ref.removeprefix("origin/"), "merged")
        return before

    def baseline(self) -> str:
        """Train on main as a merged PR would have: outputs and run-cache pushed, lock committed."""
        self.git("checkout", "-q", "main")
        self.make("ci-repro")
        sha = self.commit_all("Train the baseline model (dvc.lock, metrics)")
        self.push("main")
        return sha

    def stop_deployments(self) -> list[str]:
        """``scripts.deploy down`` for every environment the workflows deployed."""
        stopped = []
        for state in sorted(self.run_dir.glob("*/running.json")):
            env = state.parent.name
            subprocess.run(
                [sys.executable, "-m", "scripts.deploy", "down", "--env", env],
                cwd=self.work,
                env=self.env(GITOPS_ML_RUN_DIR=str(self.run_dir)),
                capture_output=True,
                check=False,
            )
            stopped.append(env)
        return stopped

    def record_statuses(self, run: ActRun, sha: str) -> None:
        """Each job's result as the commit status GitHub shows on ``sha`` (a PR's head).

        A job act chose not to run in a run that completed (its ``if:`` was false: act
        reports nothing for it) is ``skipped``, which GitHub counts as passing for a
        required check. One expected but not run in a failed run stays ``pending``, as a
        required check that never reports does on GitHub.
        """
        path = self.record / "statuses.json"
        statuses: dict[str, dict[str, str]] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        )
        checks = statuses.setdefault(sha, {})
        for job in dict.fromkeys([*run.expected, *run.jobs]):
            not_run = "skipped" if run.returncode == 0 else "pending"
            checks[f"{Path(run.workflow).stem} / {job}"] = run.jobs.get(job, not_run)
        path.write_text(json.dumps(statuses, indent=2), encoding="utf-8")

    def statuses(self, sha: str) -> dict[str, str]:
        """The checks recorded on a commit: ``{"workflow / job": result}``."""
        path = self.record / "statuses.json"
        if not path.is_file():
            return {}
        recorded: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        return recorded.get(sha, {})

    def github(self) -> dict[str, Any]:
        """The state the cml/gh stand-ins recorded (comments, pull requests)."""
        path = self.record / "github.json"
        if not path.is_file():
            return {"comments": [], "pulls": []}
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state


def install_push_hook(origin: Path) -> None:
    """Record who made every push to ``origin`` (``.github/act/bin/post_receive.py``)."""
    hook = origin / "hooks" / "post-receive"
    hook.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} "
        f"{shlex.quote(str(STANDINS / 'bin' / 'post_receive.py'))}\n",
        encoding="utf-8",
    )
    hook.chmod(0o755)


def create_sandbox(
    root: Path, source: Path = PROJECT_ROOT, s3: S3Endpoint | None = None
) -> Sandbox:
    """Copy ``source`` into ``root/work`` on ``main``, with a bare origin and a DVC remote.

    The remote is shared storage outside the checkout, as a team's is: a bucket of the S3
    endpoint ``s3`` (its keys reach the workflows as the ``AWS_*`` secrets, and the
    developer's commands through :attr:`Sandbox.storage_env`), else a local folder.
    """
    sandbox = Sandbox(root)
    copy_project(sandbox.work, source)
    if s3 is not None:
        s3.configure_dvc(sandbox.work, prefix=f"dvc-{root.name}")
        sandbox.secrets.update(
            {
                key: value
                for key, value in s3.env().items()
                if key.startswith("AWS_") and "KEY" in key
            }
        )
        sandbox.storage_env.update(s3.env())
        message = f"sandbox: DVC remote in bucket {s3.bucket} of {s3.url}"
    else:
        remote = root / "dvc-remote"
        remote.mkdir(parents=True, exist_ok=True)
        sandbox.run("dvc", "remote", "modify", "local", "url", str(remote))
        message = "sandbox: DVC remote in a local folder"
    sandbox.commit_all(message)
    origin = root / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(sandbox.work), str(origin)], check=True)
    install_push_hook(origin)
    sandbox.git("remote", "add", "origin", str(origin))
    sandbox.git("fetch", "-q", "origin")
    sandbox.git("branch", "-q", "--set-upstream-to=origin/main", "main")
    (root / "dispatch-token").write_text(DISPATCH_TOKEN, encoding="utf-8")
    tokens = {DISPATCH_TOKEN: "app", WORKFLOW_TOKEN: "workflow", READ_ONLY_TOKEN: "read-only"}
    # Serves for the sandbox's life (a daemon thread, gone with the process): the relay may
    # dispatch long after the run that deployed it.
    sandbox.api_server = serve(sandbox.record, REPOSITORY, tokens)
    return sandbox


def main(argv: Sequence[str] | None = None) -> int:
    """Run the workflows an event triggers in a fresh sandbox; exit 1 unless all ran green."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.act", description=__doc__)
    parser.add_argument("event", choices=sorted(EVENT_TRIGGERS))
    parser.add_argument("--workflow", action="append", help="file name (default: all triggered)")
    parser.add_argument("--expect", action="append", help="job ids expected to run (default: all)")
    parser.add_argument("--job", default=None, help="run only this job id")
    parser.add_argument("--var", action="append", default=[], help="repository variable k=v")
    parser.add_argument("--sandbox", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox afterwards")
    parser.add_argument(
        "--relax",
        action="append",
        default=[],
        choices=sorted(RULES),
        help="turn one of GitHub's rules off (default: every rule on, as on GitHub)",
    )
    parser.add_argument(
        "--no-app",
        action="store_true",
        help="no GitHub App configured (GITOPS_APP_ID/GITOPS_APP_KEY): GITHUB_TOKEN only",
    )
    parser.add_argument(
        "--allow-actions-prs",
        action="store_true",
        help="the repository setting 'Allow GitHub Actions to create pull requests' (off)",
    )
    args = parser.parse_args(argv)
    root = args.sandbox or Path(tempfile.mkdtemp(prefix="gitops-ml-act-"))
    storage = contextlib.ExitStack()
    try:
        try:
            endpoint: S3Endpoint | None = storage.enter_context(s3_server())
        except S3ServerError as error:
            print(f"act: DVC storage in a local folder ({error})")
            endpoint = None
        sandbox = create_sandbox(root, s3=endpoint)
        for rule in args.relax:
            sandbox.relax(rule, "--relax on the command line")
        sandbox.settings["actions_can_create_pull_requests"] = args.allow_actions_prs
        if not args.no_app:  # configured as README's adoption section says
            sandbox.variables["GITOPS_APP_ID"] = "424242"
            sandbox.secrets["GITOPS_APP_KEY"] = "(act sandbox: a stand-in key)"
        before = sandbox.baseline()
        if args.event == "pull_request":
            sandbox.git("checkout", "-q", "-b", "act/pull-request")
            sandbox.git("commit", "-q", "--allow-empty", "-m", "act: pull request head")
            sandbox.push("act/pull-request")
        names = args.workflow or [path.name for path in workflows_for(sandbox.work, args.event)]
        if not names:
            raise ActError(f"no workflow in .github/workflows is triggered by {args.event}")
        variables = dict(item.split("=", 1) for item in args.var)
        payload: dict[str, Any] = {"before": before} if args.event == "push" else {}
        if args.event == "schedule" and not os.environ.get("DRIFT_WINDOW"):
            # No production logs in a fresh sandbox: the drift job judges a generated window
            # of young clients (covariate drift) instead.
            from pipeline.generate import Window, write_dataset

            window = root / "drift-window.parquet"
            write_dataset(window, 1000, 5, Window(drift="covariate"))
            sandbox.job_env["DRIFT_WINDOW"] = str(window)
        if args.event == "push":
            sandbox.git("commit", "-q", "--allow-empty", "-m", "act: push to main")
            sandbox.push("main")
        runs = [
            sandbox.act(args.event, name, args.expect, variables, job=args.job, **payload)
            for name in names
        ]
    except (ActError, subprocess.CalledProcessError, OSError) as error:
        print(f"act: {error}", file=sys.stderr)
        storage.close()
        return 1
    if sandbox.relaxed:
        print(f"act: rules relaxed: {', '.join(sorted(sandbox.relaxed))}")
    for run in runs:
        print(run.summary())
        for job, pids in run.cleaned.items():
            print(f"  runner cleanup at the end of {job}: terminated {len(pids)} process(es)")
        if not run.ok:
            failed = [job for job, result in run.jobs.items() if result != "success"]
            for job in failed:
                print(f"--- {run.workflow}/{job} (last lines) ---\n{run.output(job)[-3000:]}")
            if run.missing:
                print(
                    f"act: expected jobs did not run: {', '.join(run.missing)} (act skips jobs "
                    "whose runs-on label has no -P mapping, and jobs whose needs failed)"
                )
    if args.keep:
        print(f"act: sandbox kept in {root}; deployments keep running under {sandbox.run_dir}")
        print(
            f"     stop them with: GITOPS_ML_RUN_DIR={sandbox.run_dir} make undeploy DEPLOY_ENV=…"
        )
    else:
        stopped = sandbox.stop_deployments()
        if stopped:
            print(f"act: stopped the deployments the run started ({', '.join(stopped)})")
        if all(run.ok for run in runs):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"act: logs kept in {root / 'logs'}")
    storage.close()
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
