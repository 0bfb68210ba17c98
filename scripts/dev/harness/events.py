"""Events and the runs they start.

A person's pull request, push or merge, what those runs cause in turn, and the dispatches
a service sends.

Which workflows an event starts follows their ``on:`` filters
(:func:`~scripts.dev.harness.workflows.triggered_workflows`); an event made with a run's
``GITHUB_TOKEN`` starts none (GitHub docs, "Triggering a workflow from a workflow"), one made
by a person, an App or a PAT does (:meth:`Events.follow_up`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from scripts.dev.harness.github.hooks import refusal
from scripts.dev.harness.github.tokens import APP_TOKEN, WORKFLOW_TOKEN
from scripts.dev.harness.runs import ActRun, Runs
from scripts.dev.harness.workflows import triggered_workflows

# How many rounds of events made by workflow runs the dispatcher follows.
MAX_FOLLOW_UPS = 5


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
        return self.state.dispatches()

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
                raise TimeoutError(f"no repository_dispatch within {timeout:.0f} s")
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
            self.auto_merge()
            now = (len(self.pushes()), len(self.github()["pulls"]))
            more = self.follow_up(*seen)
            seen = now
            if not more:
                break
            runs += more
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
