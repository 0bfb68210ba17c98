"""The sandbox's repository: a working copy, its bare ``origin``, and what GitHub holds for it.

:class:`Repository` is the state every part of the sandbox shares (settings, environments,
variables, secrets, open pull requests) and the git operations on the copy and the origin.
Runs (:mod:`~scripts.dev.harness.runs`) and events (:mod:`~scripts.dev.harness.events`)
build on it; :class:`~scripts.dev.harness.sandbox.Sandbox` is the whole.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.github.environments import Environment
from scripts.dev.harness.github.state import DEFAULT_SETTINGS, Protection, Record
from scripts.dev.harness.github.tokens import FORK, REPOSITORY
from scripts.dev.harness.workflows import EVENT_TRIGGERS
from scripts.dev.workspace import edit_yaml, tool_env


@dataclass
class Repository:
    """A clone with a bare ``origin`` and a DVC remote, and the GitHub settings around it."""

    root: Path
    # Extra environment for every job (e.g. the deployment ports a test chose).
    job_env: dict[str, str] = field(default_factory=dict)
    # Repository settings the GitHub stand-ins enforce (DEFAULT_SETTINGS: GitHub's defaults).
    settings: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    # Rules of RULES turned off, each with why (the defect scenario and issue that fix it).
    relaxed: dict[str, str] = field(default_factory=dict)
    # Deployment environments with their protection rules and secrets (GitHub: none).
    environments: dict[str, Environment] = field(default_factory=dict)
    # Environments a reviewer approved for the next run.
    approved: set[str] = field(default_factory=set)
    # Branch protection per branch (GitHub: none).
    protection: dict[str, Protection] = field(default_factory=dict)
    # Repository variables (``vars.*``) and secrets every run gets (a fork's PR: no secret).
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    # What the developer's own commands (run, make) get to reach the DVC storage; the
    # workflows get it only through ``secrets``.
    storage_env: dict[str, str] = field(default_factory=dict)
    # Open pull requests people opened here: head branch -> number.
    pull_requests: dict[str, int] = field(default_factory=dict)
    # The GitHub API stand-in over HTTP (github/api.py), for services.
    api_server: Any = None
    # Repository dispatches already turned into workflow runs.
    dispatches_delivered: int = 0
    # Workflows the dispatcher never starts, each with why.
    skip: dict[str, str] = field(
        default_factory=lambda: {"ci.yml": "runs make test, i.e. the suite that runs the harness"}
    )

    @property
    def protected(self) -> set[str]:
        """Environments whose protection rules require a reviewer."""
        return {name for name, env in self.environments.items() if env.reviewers}

    @property
    def work(self) -> Path:
        """The working copy act runs in."""
        return self.root / "work"

    @property
    def origin(self) -> Path:
        """The bare repository that plays GitHub's copy."""
        return self.root / "origin.git"

    @property
    def record(self) -> Path:
        """The recorded GitHub state's folder (:class:`Record`)."""
        return self.root / "record"

    @functools.cached_property
    def state(self) -> Record:
        """The recorded GitHub state."""
        return Record(self.record)

    @property
    def run_dir(self) -> Path:
        """Where deployments started by the workflows keep their state and logs."""
        return self.root / "run"

    @property
    def machines(self) -> Path:
        """The modelled machines' roots (HOME, tool cache, temporary folder)."""
        return self.root / "machines"

    def statuses(self, sha: str) -> dict[str, str]:
        """The checks recorded on a commit: ``{check name: result}``."""
        return self.state.checks(sha)

    def github(self) -> dict[str, Any]:
        """The state the cml/gh stand-ins recorded (comments, pull requests)."""
        return self.state.github()

    def pushes(self) -> list[dict[str, str]]:
        """Every push origin received, with who made it."""
        return self.state.pushes()

    def publish_settings(self) -> None:
        """Hand the settings and protection rules to the stand-ins that enforce them."""
        self.state.set_settings(self.settings)
        self.state.set_protection(self.protection)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for commands in the working copy (no BentoML store override)."""
        env = {**tool_env(), "GIT_PAGER": "cat", "DVC_NO_ANALYTICS": "1"}
        # A developer's own token must not make the sandbox's pushes an App's.
        for name in ("BENTOML_HOME", "GH_TOKEN", "GITHUB_TOKEN"):
            env.pop(name, None)
        return {**env, **extra}

    def run(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the working copy (``env``: extra variables)."""
        result = subprocess.run(
            list(args),
            cwd=self.work,
            env=self.env(**self.storage_env, **(env or {})),
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

    def push(self, branch: str, merge_of: str | None = None, token: str | None = None) -> None:
        """Push a branch to the bare origin (and update origin/<branch>), as a person.

        Branch protection applies (the origin's pre-receive hook); ``merge_of`` names the
        pull request head whose checks a merge is judged by.

        Raises:
            ActError: When the origin refuses the push (GH006), with GitHub's message.
        """
        extra = {"GITOPS_ML_MERGE_OF": merge_of} if merge_of else {}
        if token:  # pushed with a token (an auto-merge enabled by an App), not by a person
            extra["GH_TOKEN"] = token
        self.run("git", "push", "-q", "--force", "origin", f"{branch}:{branch}", env=extra)
        self.git("fetch", "-q", "origin")

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

    def changed_files(self, since: str, until: str = "HEAD") -> list[str]:
        """Files ``until`` changed since ``since`` (from their merge base, as a PR's diff)."""
        return self.git("diff", "--name-only", f"{since}...{until}").split()

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

    def merge(self, ref: str, message: str, token: str | None = None) -> str:
        """Merge ``ref`` into main and push it; the commit main was at before.

        A pull request open from that branch is merged with it, as on GitHub.
        """
        self.git("checkout", "-q", "main")
        before = self.head()
        branch = ref.removeprefix("origin/")
        # Through a pull request, protection judges the PR's head; else the pushed merge.
        opened = self.open_pull_request_number(branch) is not None
        head = self.head(ref) if opened else None
        self.git("merge", "-q", "--no-ff", "-m", message, ref)
        try:
            self.push("main", merge_of=head, token=token)
        except ActError:
            self.git("reset", "-q", "--hard", before)
            raise
        self.end_pull_requests(branch, "merged")
        return before

    def open_pull_request_number(self, branch: str) -> int | None:
        """The number of the open PR from ``branch``, opened here or by a workflow."""
        if branch in self.pull_requests:
            return self.pull_requests[branch]
        for pull in self.github()["pulls"]:
            if pull["head"] == branch and pull.get("state", "open") == "open":
                return int(pull["number"])
        return None

    def end_pull_requests(self, branch: str, end: str) -> None:
        """The open PRs from ``branch`` are ``merged`` or ``closed``."""
        self.pull_requests.pop(branch, None)
        self.state.end_pulls(branch, end)

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
