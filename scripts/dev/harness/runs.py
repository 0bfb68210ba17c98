"""Running one workflow file with act, as GitHub would run it for an event.

act in host mode runs jobs with no GitHub around them; :meth:`Runs.act` adds what GitHub
does (docs/harness.md): the machine each job lands on, a fresh checkout of the event's
commit, the runner's job-end cleanup and cache saves, the run's token with each job's
``permissions:``, secrets by environment and deployment-branch policy, reviewers' waits,
a fork's read-only token, and for a pull request the workflow file of its merge commit.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.github.environments import branch_refusal, run_secrets, run_variables
from scripts.dev.harness.github.tokens import (
    FORK,
    READ_ONLY_TOKEN,
    REPOSITORY,
    WORKFLOW_TOKEN,
    scopes_of,
)
from scripts.dev.harness.machines import machine_env, machine_roots, self_hosted_jobs
from scripts.dev.harness.repository import Repository
from scripts.dev.harness.runner import new_tracking_id, run_streaming
from scripts.dev.harness.workflows import (
    check_names,
    event_ref,
    job_environments,
    job_ids,
    job_scopes,
    load,
    triggers,
    waiting_jobs,
)
from scripts.dev.workspace import PROJECT_ROOT, uv_cache_dir

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
    "aws-actions/configure-aws-credentials": "configure-aws-credentials",
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
# GitHub behaviours the harness models that a scenario may relax, each by name (docs/harness.md).
RULES = {
    "orphan-cleanup": "the runner terminates a job's processes when the job ends",
    "setup-cml-canvas": "iterative/setup-cml@v2.0.1 fails installing canvas@2 unless vega: false",
}


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


# act 0.2.89's workflow schema predates `queue:` in a concurrency mapping (GitHub changelog
# 2026-05-07) and refuses the file ("Unknown Property queue"). act runs one workflow at a
# time and models no concurrency; the pure model (concurrency.Group) reads the real files.
QUEUE_LINE = re.compile(r"^[ \t]+queue:[ \t]*(max|single)[ \t]*(#.*)?\n", re.MULTILINE)


# A job's header under `jobs:`, its job-level `environment:` (a name, an expression, or a
# mapping with `name:`), and a secret read other than GITHUB_TOKEN.
JOB_HEADER = re.compile(r"^  [A-Za-z_][\w-]*:[ \t]*(#.*)?$", re.MULTILINE)
JOB_ENVIRONMENT = re.compile(
    r"^    environment:[ \t]*(?P<value>[^#\n]*?)[ \t]*(#.*)?\n"
    r"(?:      name:[ \t]*(?P<name>[^#\n]*?)[ \t]*(#.*)?\n)?",
    re.MULTILINE,
)
SECRET = re.compile(r"\bsecrets\.(?!GITHUB_TOKEN\b)([A-Za-z_][A-Za-z0-9_]*)")
EXPRESSION = re.compile(r"^\$\{\{\s*(.*?)\s*\}\}$")


def secret_reference(environment: str, name: str) -> str:
    """How a job of ``environment`` reads its secret ``name`` in act's copy."""
    expression = EXPRESSION.match(environment)
    if expression:
        return f"secrets[format('{{0}}__{name}', {expression[1]})]"
    return f"secrets['{environment}__{name}']"


def scoped_match(environment: str, match: re.Match[str]) -> str:
    """:func:`secret_reference` for one ``secrets.NAME`` match."""
    return secret_reference(environment, match[1])


def scope_secrets(text: str) -> str:
    """Each job that names an environment reads that environment's secrets (scoped names).

    GitHub gives a job its environment's secrets only; act passes one set per run
    (``github.environments.run_secrets`` scopes them). ``secrets.NAME`` in such a job
    becomes ``secrets['ENV__NAME']``, or ``secrets[format('{0}__NAME', EXPR)]`` when the
    environment is an expression (a matrix's).
    """
    start = text.find("\njobs:")
    if start < 0:
        return text
    heads = [m.start() for m in JOB_HEADER.finditer(text, start)] + [len(text)]
    pieces = [text[: heads[0]]]
    for begin, end in itertools.pairwise(heads):
        job = text[begin:end]
        found = JOB_ENVIRONMENT.search(job)
        if found:
            environment = (found.group("name") or found.group("value")).strip("'\"")
            job = SECRET.sub(partial(scoped_match, environment), job)
        pieces.append(job)
    return "".join(pieces)


def for_act(text: str) -> str:
    """A workflow file as act runs it: ``queue:`` lines removed, secrets scoped per job."""
    return scope_secrets(QUEUE_LINE.sub("", text))


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

    # Jobs with an ``if:`` that the run may skip without a word (only when the caller
    # named no expected jobs: then every job of the file is expected).
    conditional: set[str] = field(default_factory=set)
    # Each job's check name (its ``name:``), as branch protection's required checks see it.
    names: dict[str, str] = field(default_factory=dict)
    # GitHub's run id (``GITHUB_RUN_ID``): the run's artifacts stay retrievable by it.
    run_id: int = 0
    # What a ``workflow_run`` event says of this run once it completed (its ``id``, the
    # workflow's ``name``, ``event``, ``head_branch``, ``head_sha``, ``head_repository``).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Expected jobs that reported no result (skipped or never started).

        A job with an ``if:`` in a run that completed (act exit 0) was skipped by its
        condition, as GitHub skips it; any other silent job is missing (act skips a job
        whose labels have no runner mapping, and jobs whose needs failed).
        """
        skippable = self.conditional if self.returncode == 0 else set()
        return [job for job in self.expected if job not in self.jobs and job not in skippable]

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

    def workflow_run(self) -> dict[str, Any]:
        """The ``workflow_run`` object of the event GitHub sends when this run completed.

        Its ``conclusion`` is ``success`` when every job passed (or was skipped by its
        ``if:``), else ``failure``.
        """
        return {**self.details, "conclusion": "success" if self.ok else "failure"}

    def summary(self) -> str:
        """One line per expected or reported job."""
        rows = [
            f"{self.workflow} ({self.event}, run {self.run_id}): act exit {self.returncode}, "
            f"{self.seconds:.0f} s"
        ]
        for job in dict.fromkeys([*self.expected, *self.jobs]):
            silent = "NOT RUN (expected)" if job in self.missing else "skipped (its if:)"
            rows.append(f"  {job:<12} {self.jobs.get(job, silent)}")
        rows += [f"  VIOLATION: {violation}" for violation in self.violations]
        return "\n".join(rows)


class Runs(Repository):
    """The sandbox's workflow runs: :meth:`act`, and the checks and state they leave."""

    @property
    def api_url(self) -> str:
        """The GitHub API stand-in's base URL."""
        if self.api_server is None:
            return ""
        return f"http://127.0.0.1:{self.api_server.server_address[1]}"

    def workflow_file(self, event: str, workflow: str, number: int) -> Path:
        """The definition GitHub runs: a pull request's merge commit's, else the work tree's.

        ``pull_request`` runs the workflow files of ``refs/pull/N/merge`` (GitHub docs,
        "Events that trigger workflows": pull_request, ``GITHUB_SHA`` the merge commit), so
        a PR that edits a workflow runs its edited copy.
        """
        if event != "pull_request":
            text = (self.work / ".github" / "workflows" / workflow).read_text(encoding="utf-8")
            folder = self.root / "logs" / "workflows" / event
        else:
            ref = f"refs/pull/{number}/merge:.github/workflows/{workflow}"
            shown = self.origin_git("show", ref)
            if shown.returncode != 0:
                raise ActError(f"{workflow}: not in PR #{number}'s merge commit")
            text, folder = shown.stdout, self.root / "logs" / "workflows" / f"pr-{number}"
        copy = folder / workflow
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(for_act(text), encoding="utf-8")
        return copy

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
        """Run one workflow file for ``event`` with act; see the module docstring.

        Raises:
            ActError: When GitHub would not start the run as asked (not triggered, a
                reviewer's wait, a pull request that conflicts with its base).
        """
        if event in {"schedule", "repository_dispatch", "workflow_run"}:
            # They run on the latest commit of the default branch (GitHub docs, "Events that
            # trigger workflows": schedule, repository_dispatch, workflow_run), with its
            # definition of the workflow, whatever is checked out.
            self.git("checkout", "-q", "main")
            self.git("reset", "-q", "--hard", "origin/main")
        branch = self.git("rev-parse", "--abbrev-ref", "HEAD")
        number = int(payload.get("number", 1))
        if event == "pull_request":
            self.publish_pull_request(number, payload.get("base", "main"))
            self.pull_requests[branch] = number
        path = self.workflow_file(event, workflow, number)
        if event not in triggers(load(path)):
            raise ActError(f"{workflow} is not triggered by {event}")
        expected = list(expect) if expect is not None else [job] if job else job_ids(path)
        fork = event == "pull_request" and bool(payload.get("fork"))
        # Dependabot's runs get a read-only token and no secrets, as a fork's do (GitHub
        # docs, "Automating Dependabot with GitHub Actions"); its branch is the repository's.
        dependabot = (payload.get("sender") or {}).get("login") == "dependabot[bot]"
        ref = event_ref(event, payload, branch)
        targeted, refused = self._environments(path, ref, job)
        # The environments' variables (``vars.AWS_ROLE_ARN``...) join the repository's.
        variables = {
            **run_variables(self.variables, self.environments, targeted),
            **(variables or {}),
        }
        # A ref the environment's policy refuses fails at once: it never waits for a reviewer.
        waiting = [
            name
            for name in waiting_jobs(path, self.protected - self.approved, job)
            if name not in refused
        ]
        if waiting:
            raise ActError(
                f"{workflow}: job(s) {', '.join(waiting)} wait for a reviewer of a protected "
                "environment; GitHub holds the run until someone approves it"
            )
        self.approved.clear()
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        stamp = f"{path.stem}-{event}-{len(list(logs.glob('*.jsonl'))):02d}"
        run_id = 1 + len(list(logs.glob("*.jsonl")))
        tracking_id = new_tracking_id()
        event_file = logs / f"{stamp}.event.json"
        event_file.write_text(json.dumps(self.event_payload(event, **payload)), encoding="utf-8")
        restricted = fork or dependabot
        secrets = {} if restricted else run_secrets(self.secrets, self.environments, targeted)
        command = self._command(event, path, event_file, tracking_id, restricted, job)
        command += ["--env", f"GITHUB_RUN_ID={run_id}"]
        for flag, values in (("--var", variables), ("--secret", secrets)):
            command += [part for key, value in values.items() for part in (flag, f"{key}={value}")]
        machines = machine_roots(path, variables, self.machines, stamp, fork)
        environments = {
            name: sorted(job_environments(spec)) for name, spec in load(path)["jobs"].items()
        }
        job_env = self._job_env(machines, run_id, env, environments)
        details = {
            "id": run_id,
            "name": str(load(path).get("name") or f".github/workflows/{workflow}"),
            "event": event,
            "head_branch": branch,
            "head_sha": self.head(),
            "head_repository": {"full_name": FORK if fork else REPOSITORY},
        }
        self.publish_settings()
        self.state.set_job_scopes(
            {name: scopes_of(spec) for name, spec in job_scopes(path).items()}
        )
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
            workflow, event, returncode, jobs, expected, logs / f"{stamp}.jsonl", seconds, lines
        )
        run.cleaned = cleaned
        run.names = check_names(path)
        run.run_id, run.details = run_id, details
        if expect is None and not job:
            run.conditional = {name for name, spec in load(path)["jobs"].items() if "if" in spec}
        if fork:
            hosted = self_hosted_jobs(path, variables, fork=True)
            run.violations += [
                f"job {name} ran a fork's pull request on a self-hosted runner"
                for name in run.jobs
                if name in hosted
            ]
        # A job act ran that GitHub would have failed before its first step.
        for name, message in refused.items():
            if name in run.jobs:
                run.jobs[name] = "failure"
                run.violations.append(f"job {name}: {message}")
        (logs / f"{stamp}.log").write_text(run.output(), encoding="utf-8")
        # GitHub shows a run's checks on the commit it ran for: a PR's head, the pushed commit.
        self.record_statuses(run, self.head())
        return run

    def _command(
        self,
        event: str,
        path: Path,
        event_file: Path,
        tracking_id: str,
        fork: bool,
        job: str | None,
    ) -> list[str]:
        """Act's command line for one run (without its variables and secrets)."""
        command = [
            str(Path(sys.executable).parent / "act"),
            event,
            "--workflows",
            str(path),
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
        return command

    def _job_env(
        self,
        machines: Mapping[str, Path],
        run_id: int,
        env: Mapping[str, str] | None,
        environments: Mapping[str, list[str]] | None = None,
    ) -> dict[str, str]:
        """The environment every job of a run starts from.

        The machine model, the stand-ins' settings, the sandbox's extras, then the caller's.
        """
        harness = {
            # The machine wrapper first: every step's bash takes its job's machine.
            "PATH": os.pathsep.join(
                [str(STANDINS / "machine"), str(STANDINS / "bin"), self.env()["PATH"]]
            ),
            **machine_env(machines),
            "VENV": sys.prefix,
            # A prepared deploy host's warm uv cache (the services' interpreters are built
            # from it), as VENV is its prepared venv.
            "UV_CACHE_DIR": uv_cache_dir(),
            # The stand-ins run from the harness's own code, never the checkout's (-P).
            "GITOPS_ML_PYTHON": sys.executable,
            # Where setup-cml's stand-in finds the recording cml.
            "GITOPS_ML_STANDINS": str(STANDINS / "bin"),
            "GITOPS_ML_RECORD": str(self.record),
            # The run's artifacts, by run id (`gh run download ID` finds them there).
            "GITOPS_ML_ARTIFACTS": str(self.root / "artifacts" / str(run_id)),
            "GITOPS_ML_RUN_DIR": str(self.run_dir),
            "GITOPS_ML_ORIGIN": str(self.origin),
            "GITOPS_ML_CACHE_STORE": str(self.root / "cache-store"),
            "GITOPS_ML_RELAXED": ",".join(sorted(self.relaxed)),
            # The deploy runner's setup for the retraining relay (README, "Alert-triggered
            # retraining"): a token file, and here the GitHub API stand-in's URL.
            "GITOPS_ML_DISPATCH_TOKEN_FILE": str(self.root / "dispatch-token"),
            "GITOPS_ML_GITHUB_API": self.api_url,
            # Each job's environment(s), for the OIDC claims of configure-aws-credentials'
            # stand-in (it reads GITHUB_JOB's; several for a matrix of environments).
            "GITOPS_ML_JOB_ENVIRONMENTS": json.dumps(
                {job: names for job, names in (environments or {}).items() if names}
            ),
        }
        # A scenario's own settings win (e.g. another machine's run directory and ports).
        return self.env(**{**harness, **self.job_env, **(env or {})})

    def _environments(
        self, path: Path, ref: str, only: str | None
    ) -> tuple[set[str], dict[str, str]]:
        """Environments the run's jobs may deploy to from ``ref``, and the jobs refused.

        Returns:
            The environments whose deployment-branch policy lets ``ref`` deploy (their
            secrets reach the run), and per job whose policy refuses it GitHub's message.
        """
        allowed: set[str] = set()
        refused: dict[str, str] = {}
        for name, spec in load(path)["jobs"].items():
            if only is not None and name != only:
                continue
            for target in job_environments(spec):
                environment = self.environments.get(target)
                message = branch_refusal(target, environment, ref) if environment else None
                if message:
                    refused[name] = message
                else:
                    allowed.add(target)
        return allowed, refused

    def record_statuses(self, run: ActRun, sha: str) -> None:
        """Each job's result as the check GitHub shows on ``sha`` (a PR's head), by check name.

        A job act chose not to run in a run that completed (its ``if:`` was false: act
        reports nothing for it) is ``skipped``, which GitHub counts as passing for a
        required check. One expected but not run in a failed run stays ``pending``, as a
        required check that never reports does on GitHub.
        """
        checks = {}
        for job in dict.fromkeys([*run.expected, *run.jobs]):
            not_run = "skipped" if run.returncode == 0 else "pending"
            checks[run.names.get(job, job)] = run.jobs.get(job, not_run)
        self.state.set_checks(sha, checks)

    def github_env(self, token: str | None = None) -> dict[str, str]:
        """The environment of a command run as a workflow step would, with ``token`` if any.

        The recording ``gh``/``cml`` stand-ins first on PATH, the sandbox's repository.
        """
        env = self.env(
            GITOPS_ML_RECORD=str(self.record),
            GITHUB_REPOSITORY=REPOSITORY,
            GITOPS_ML_PYTHON=sys.executable,
        )
        env["PATH"] = f"{STANDINS / 'bin'}{os.pathsep}{env['PATH']}"
        if token is not None:
            env["GH_TOKEN"] = token
        return env
