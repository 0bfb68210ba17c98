"""Events and the runs they start.

A person's pull request, push or merge, what those runs cause in turn, and the dispatches
a service sends.

Which workflows an event starts follows their ``on:`` filters
(:func:`~scripts.dev.harness.workflows.triggered_workflows`); an event made with a run's
``GITHUB_TOKEN`` starts none (GitHub docs, "Triggering a workflow from a workflow"), one made
by a person, an App or a PAT does (:meth:`Events.follow_up`). A run that completes starts
the default branch's ``workflow_run`` listeners of its workflow (:meth:`Events.complete_run`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.dev.harness.github.hooks import refusal
from scripts.dev.harness.github.tokens import APP_TOKEN, REPOSITORY, WORKFLOW_TOKEN
from scripts.dev.harness.runs import ActRun, Runs
from scripts.dev.harness.workflows import triggered_workflows

# How many rounds of events made by workflow runs the dispatcher follows.
MAX_FOLLOW_UPS = 5
# ``github.event.sender``: who caused the event, a person or the App's bot (its pushes and
# PRs); Dependabot is a bot whose runs get no secrets (Runs.act).
PERSON = {"login": "developer", "type": "User"}
APP_BOT = {"login": "gitops-ml-app[bot]", "type": "Bot"}
DEPENDABOT = {"login": "dependabot[bot]", "type": "Bot"}
SENDERS = {"person": PERSON, "app": APP_BOT}


class Events(Runs):
    """What GitHub starts for the events of people, Apps and services."""

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
            sender = SENDERS.get(push["by"], PERSON)
            if branch != base:
                # A push to an open PR's branch: GitHub runs its pull_request workflows.
                number = self.open_pull_request_number(branch)
                if number is not None:
                    self.git("fetch", "-q", "origin")
                    self.git("checkout", "-q", "-B", branch, f"origin/{branch}")
                    runs += self._pull_request_runs(branch, number, base, sender)
                continue
            self.git("fetch", "-q", "origin")
            self.git("checkout", "-q", base)
            self.git("reset", "-q", "--hard", f"origin/{base}")
            changed = self.changed_files(push["before"], push["after"])
            names = triggered_workflows(self.work, "push", changed, base)
            runs += [
                self.act("push", name, before=push["before"], sender=sender)
                for name in names
                if name not in self.skip
            ]
        for pull in self.github()["pulls"][pulls_seen:]:
            if not pull.get("triggers_workflows"):
                continue
            self.git("fetch", "-q", "origin")
            self.git("checkout", "-q", "-B", pull["head"], f"origin/{pull['head']}")
            sender = SENDERS.get(pull.get("token", ""), APP_BOT)
            runs += self._pull_request_runs(pull["head"], int(pull["number"]), pull["base"], sender)
        return runs

    def complete_run(self, run: ActRun) -> list[ActRun]:
        """GitHub's ``workflow_run`` event for a run that completed: the runs it starts.

        Every workflow of the default branch's latest commit whose ``on: workflow_run``
        names the run's workflow (its ``name:``) and whose ``branches`` match the run's
        head branch runs with main's definition and commit, ``GITHUB_REF`` the default
        branch (GitHub docs, "Events that trigger workflows": workflow_run), the completed
        run in its payload. The workflow files of a pull request never decide this.
        """
        if not run.details:
            return []
        self.git("fetch", "-q", "origin")
        main = self.default_branch_workflows()
        names = triggered_workflows(
            main, "workflow_run", [run.details["name"]], run.details["head_branch"]
        )
        return [
            self.act("workflow_run", name, workflow_run=run.workflow_run())
            for name in names
            if name not in self.skip
        ]

    def default_branch_workflows(self) -> Path:
        """The workflow files of origin's main, copied to a folder (a root to read them from)."""
        root = self.root / "logs" / "workflows" / "default-branch"
        folder = root / ".github" / "workflows"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        listed = self.origin_git("ls-tree", "--name-only", "main:.github/workflows/")
        for name in listed.stdout.split():
            shown = self.origin_git("show", f"main:.github/workflows/{name}")
            (folder / name).write_text(shown.stdout, encoding="utf-8")
        return root

    def event_payload(self, event: str, **fields: Any) -> dict[str, Any]:
        """A payload in the shape act and our scripts read, with its ``sender``.

        ``workflow_run``: the completed run (``workflow_run``: id, name, event,
        conclusion, head_branch, head_sha, head_repository), sent by the App that ran it.
        """
        if event == "workflow_run":
            return {
                "action": "completed",
                "workflow_run": fields["workflow_run"],
                "repository": {
                    "full_name": REPOSITORY,
                    "name": REPOSITORY.split("/")[1],
                    "owner": {"login": REPOSITORY.split("/")[0]},
                    "default_branch": "main",
                },
                "sender": fields.get("sender", PERSON),
            }
        payload = super().event_payload(event, **fields)
        payload["sender"] = fields.get("sender", PERSON)
        return payload

    def dispatches(self) -> list[dict[str, Any]]:
        """Every workflow dispatch the GitHub API stand-in accepted."""
        return self.state.dispatches()

    def deliver_dispatches(self) -> list[ActRun]:
        """Start what GitHub would for the workflow dispatches made since the last delivery.

        Each runs its workflow file as the dispatch's branch has it at its latest commit, as
        a ``workflow_dispatch`` run with the dispatch's inputs (one made even with a
        workflow's GITHUB_TOKEN starts it); then whatever those runs started in turn.
        """

        def runs() -> list[ActRun]:
            started: list[ActRun] = []
            new = self.dispatches()[self.dispatches_delivered :]
            self.dispatches_delivered += len(new)
            for dispatch in new:
                if dispatch["workflow"] in self.skip:
                    continue
                branch = dispatch["ref"].removeprefix("refs/heads/")
                self.git("fetch", "-q", "origin")
                self.git("checkout", "-q", "-B", branch, f"origin/{branch}")
                started.append(
                    self.act("workflow_dispatch", dispatch["workflow"], inputs=dispatch["inputs"])
                )
            return started

        return self._with_follow_ups(runs)

    def close_pull_request(self, branch: str) -> None:
        """A person closes the open PR from ``branch`` without merging it."""
        self.end_pull_requests(branch, "closed")

    def wait_for_dispatches(self, timeout: float = 90.0) -> list[dict[str, Any]]:
        """The dispatches accepted so far, waiting up to ``timeout`` s for a first one.

        A service (the relay) sends them on its own schedule, not during a run.

        Raises:
            TimeoutError: When none arrived.
        """
        deadline = time.monotonic() + timeout
        while not self.dispatches():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no workflow dispatch within {timeout:.0f} s")
            time.sleep(0.5)
        return self.dispatches()

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

    def _pull_request_runs(
        self, branch: str, number: int, base: str, sender: dict[str, str] | None = None
    ) -> list[ActRun]:
        changed = self.changed_files(f"origin/{base}", branch)
        names = triggered_workflows(self.work, "pull_request", changed, base)
        return [
            self.act("pull_request", name, number=number, base=base, sender=sender or PERSON)
            for name in names
            if name not in self.skip
        ]

    def _with_follow_ups(self, start: Callable[[], list[ActRun]]) -> list[ActRun]:
        """``start``'s runs, then round by round what they caused in turn.

        Each round: the ``workflow_run`` listeners of the runs that completed in the round
        before (:meth:`complete_run`), auto-merges, then the pushes and PRs made since
        (:meth:`follow_up`), including the listeners' own.
        """
        seen = (len(self.pushes()), len(self.github()["pulls"]))
        runs = start()
        completed = list(runs)
        for _ in range(MAX_FOLLOW_UPS):
            listeners = [started for run in completed for started in self.complete_run(run)]
            self.auto_merge()
            now = (len(self.pushes()), len(self.github()["pulls"]))
            completed = [*listeners, *self.follow_up(*seen)]
            seen = now
            if not completed:
                break
            runs += completed
        return runs

    def auto_merge(self) -> list[int]:
        """Merge the open PRs with auto-merge on whose required checks passed on their head.

        GitHub merges such a PR as whoever enabled auto-merge (an App's merge starts the
        push workflows, a ``GITHUB_TOKEN``'s does not). Returns the numbers merged.
        """
        merged = []
        for pull in self.github()["pulls"]:
            if pull.get("state") != "open" or not pull.get("auto_merge"):
                continue
            self.git("fetch", "-q", "origin")
            head = self.head(f"origin/{pull['head']}")
            rule = self.state.protection(pull["base"])
            if rule is not None and refusal(rule, pull["base"], "person", self.statuses(head)):
                continue
            token = {"app": APP_TOKEN, "workflow": WORKFLOW_TOKEN}.get(pull["auto_merge"])
            message = f"Merge pull request #{pull['number']} from {pull['head']} (auto-merge)"
            self.merge(f"origin/{pull['head']}", message, token=token)
            merged.append(int(pull["number"]))
        return merged
