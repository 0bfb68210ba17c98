"""The sandbox: a team's repository on GitHub, played on one machine.

:func:`create_sandbox` copies the project into ``root/work`` on ``main`` with a bare
``origin`` (whose hooks record pushes and enforce branch protection), a DVC remote outside
the checkout (a bucket of a real S3 endpoint, or a folder), and the GitHub API stand-in.
:func:`adopt` configures it as a team that followed the README would have it on GitHub.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.events import Events
from scripts.dev.harness.github.api import serve
from scripts.dev.harness.github.environments import Environment
from scripts.dev.harness.github.state import DEFAULT_SETTINGS, Protection
from scripts.dev.harness.github.tokens import DISPATCH_TOKEN, REPOSITORY
from scripts.dev.harness.runner import reboot
from scripts.dev.harness.runs import RULES
from scripts.dev.harness.workflows import check_names
from scripts.dev.s3 import S3Endpoint
from scripts.dev.workspace import PROJECT_ROOT, copy_project

# The jobs whose checks a team's branch protection requires on main (README, "Adopting"):
# the PR's tests and its training run; GitHub matches them by the jobs' names.
REQUIRED_JOBS = (
    ("ci.yml", "lint"),
    ("ci.yml", "workflows"),
    ("ci.yml", "test"),
    ("train.yml", "train"),
)
# The deploy runner's machine (the jobs on ``[self-hosted, deploy]``).
DEPLOY_MACHINE = "self-hosted-deploy-self-hosted"


class Sandbox(Events):
    """A repository on GitHub with its runners: git, runs, events, and the rules around them."""

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

    def baseline(self) -> str:
        """Train main as a merged, released PR would have: lock committed, outputs remote.

        Outputs and run-cache go to the default remote, where release.yml's ``make
        release-repro`` puts them (a PR's job reaches only ``pr/``).
        """
        self.git("checkout", "-q", "main")
        self.make("release-repro")
        sha = self.commit_all("Train the baseline model (dvc.lock, metrics)")
        self.push("main")
        return sha

    def stop_deployments(self) -> list[str]:
        """``scripts.deploy down`` for every environment the workflows deployed."""
        stopped = []
        for state in sorted(self.run_dir.glob("*/running.json")):
            name = state.parent.name
            subprocess.run(
                [sys.executable, "-m", "scripts.deploy", "down", "--env", name],
                cwd=self.work,
                env=self.env(GITOPS_ML_RUN_DIR=str(self.run_dir)),
                capture_output=True,
                check=False,
            )
            stopped.append(name)
        return stopped

    def reboot(self, machine: str = DEPLOY_MACHINE) -> list[int]:
        """A machine of the sandbox restarts (:func:`~scripts.dev.harness.runner.reboot`).

        Nothing is started again at boot unless something on the machine says so; the
        harness does not start it on the project's behalf. Returns the pids that ended.
        """
        # The deploy machine's services run under the sandbox's run directory.
        marks = [self.run_dir] if machine == DEPLOY_MACHINE else []
        return reboot(self.machines / machine, marks)


def install_hooks(origin: Path) -> None:
    """The origin's hooks (:mod:`~scripts.dev.harness.github.hooks`): protection, push record."""
    for hook in ("pre-receive", "post-receive"):
        path = origin / "hooks" / hook
        path.write_text(
            f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -P -m "
            f"scripts.dev.harness.github.hooks {hook}\n",
            encoding="utf-8",
        )
        path.chmod(0o755)


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
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(sandbox.work), str(sandbox.origin)], check=True
    )
    install_hooks(sandbox.origin)
    sandbox.git("remote", "add", "origin", str(sandbox.origin))
    sandbox.git("fetch", "-q", "origin")
    sandbox.git("branch", "-q", "--set-upstream-to=origin/main", "main")
    (root / "dispatch-token").write_text(DISPATCH_TOKEN, encoding="utf-8")
    sandbox.publish_settings()
    # Serves for the sandbox's life (a daemon thread, gone with the process): the relay may
    # dispatch long after the run that deployed it.
    sandbox.api_server = serve(sandbox.record, REPOSITORY, sandbox.origin)
    return sandbox


def adopt(
    sandbox: Sandbox,
    *,
    bypass: Sequence[str] = (),
    auto_merge: bool = True,
    reviewers: Sequence[str] = ("platform-lead",),
    s3: S3Endpoint | None = None,
    protect: bool = True,
) -> Sandbox:
    """Configure the sandbox as a team that followed README's adoption steps has it.

    A ruleset on main requires the checks of :data:`REQUIRED_JOBS` (by the jobs' names, as
    README lists them) with no bypass actor (``bypass=("app",)``: the App is one). No
    repository secret: every key lives in an environment (docs/security.md) —
    ``pr-storage`` (any ref: a pull_request run's is ``refs/pull/N/merge``) the PR role's
    storage keys; ``release`` (main only) the release role's keys and the App's key;
    ``staging`` and ``production-sync`` (main only) the deploy role's keys, a kubeconfig,
    and for production-sync the App's key; ``production`` (main only) a required reviewer
    and nothing else. With an IAM-enforcing endpoint ``s3`` (the one :func:`create_sandbox`
    got) the keys are its roles' (docs/iam/storage-*.json); else each environment gets
    the sandbox's one key. "Allow auto-merge" on, as README says (``auto_merge=False``: a
    team without it). ``protect=False`` leaves main unprotected (scenarios that push to
    main as a person and run no ci.yml keep the rest of the profile).
    """
    sandbox.variables["GITOPS_APP_ID"] = "424242"
    if "pr-storage" not in sandbox.environments:  # adopted once; later calls change settings
        move_secrets_to_environments(sandbox, reviewers, s3)
    workflows = sandbox.work / ".github" / "workflows"
    required = tuple(check_names(workflows / name)[job] for name, job in REQUIRED_JOBS)
    if protect:
        sandbox.protection["main"] = Protection(required, tuple(bypass))
    sandbox.settings["allow_auto_merge"] = auto_merge
    sandbox.publish_settings()
    return sandbox


def move_secrets_to_environments(
    sandbox: Sandbox, reviewers: Sequence[str], s3: S3Endpoint | None
) -> None:
    """The environments of :func:`adopt`, with the keys the repository held until now."""
    app_key = {"GITOPS_APP_KEY": "-----BEGIN PRIVATE KEY----- (act sandbox)"}
    shared = {
        key: sandbox.secrets.pop(key) for key in list(sandbox.secrets) if key.startswith("AWS_")
    }
    sandbox.secrets.pop("GITOPS_APP_KEY", None)

    def keys(role: str) -> dict[str, str]:
        if s3 is None or not s3.iam:
            return dict(shared)
        return s3.role_keys(role, f"dvc-{sandbox.root.name}")

    kubeconfig = {"KUBECONFIG": "(act sandbox: a stand-in kubeconfig)"}
    main_only = ("main",)
    sandbox.environments.update(
        {
            "pr-storage": Environment(secrets=keys("pr")),
            "release": Environment(branches=main_only, secrets={**keys("release"), **app_key}),
            "staging": Environment(branches=main_only, secrets={**keys("deploy"), **kubeconfig}),
            "production": Environment(reviewers=tuple(reviewers), branches=main_only),
            "production-sync": Environment(
                branches=main_only, secrets={**keys("deploy"), **kubeconfig, **app_key}
            ),
        }
    )
