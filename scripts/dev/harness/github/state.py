"""The recorded GitHub state of a sandbox: the only reader and writer of ``<sandbox>/record``.

What GitHub would hold, kept as files because the processes that change it are many (the
``gh``/``cml`` stand-ins jobs run, the origin's hooks, the HTTP API the relay calls, the
sandbox itself):

* ``github.json``: comments and pull requests (one lock for every read-modify-write);
* ``calls.jsonl``, ``pushes.jsonl``, ``dispatches.jsonl``: what was called, pushed, dispatched;
* ``statuses.json``: each commit's checks (``"workflow / job": result``);
* ``settings.json``: repository settings (:data:`DEFAULT_SETTINGS`: a new repository's);
* ``protection.json``: branch protection per branch (:class:`Protection` as JSON);
* ``permissions.json``: the running workflow's jobs and their ``GITHUB_TOKEN`` scopes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Repository settings as a new repository has them (Settings -> General, Actions -> General).
DEFAULT_SETTINGS: Mapping[str, bool] = {
    "actions_can_create_pull_requests": False,
    "allow_auto_merge": False,
}


@dataclass(frozen=True)
class Protection:
    """A ruleset or a classic branch protection rule on one branch.

    Attributes:
        required_checks: Check names (``"workflow / job"``) that must have passed on the
            pushed commit (for a merge: the pull request's head).
        bypass: Token kinds allowed to push anyway (``app`` for the repository's App).
        strict: "Require branches to be up to date before merging" (recorded only).
        ruleset: A ruleset (bypass actors apply; GitHub refuses with GH013), else classic
            branch protection (no actor may skip required checks; GH006).
    """

    required_checks: tuple[str, ...] = ()
    bypass: tuple[str, ...] = ()
    strict: bool = False
    ruleset: bool = True


@dataclass
class Record:
    """The files under ``root`` (``<sandbox>/record``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    # github.json: comments and pull requests.
    def github(self) -> dict[str, Any]:
        """A snapshot of the comments and pull requests."""
        path = self.root / "github.json"
        if not path.is_file():
            return {"comments": [], "pulls": [], "next_id": 1}
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """The comments and pull requests for a change, saved at the end (one writer at a time)."""
        with (self.root / "github.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.github()
            yield state
            (self.root / "github.json").write_text(json.dumps(state, indent=2), encoding="utf-8")

    def end_pulls(self, branch: str, end: str) -> None:
        """The open pull requests from ``branch`` are ``merged`` or ``closed``."""
        with self.update() as state:
            for pull in state["pulls"]:
                if pull["head"] == branch and pull.get("state") == "open":
                    pull["state"] = end

    # Append-only logs.
    def _append(self, name: str, entry: Mapping[str, Any]) -> None:
        with (self.root / name).open("a", encoding="utf-8") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.write(json.dumps(entry) + "\n")

    def _read(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def log_call(self, tool: str, argv: list[str]) -> None:
        """One ``gh``/``cml`` call, as made."""
        self._append("calls.jsonl", {"tool": tool, "argv": argv})

    def log_push(self, ref: str, before: str, after: str, by: str) -> None:
        """One ref update the origin accepted, and who made it."""
        self._append("pushes.jsonl", {"ref": ref, "before": before, "after": after, "by": by})

    def pushes(self) -> list[dict[str, str]]:
        """Every push the origin accepted, oldest first."""
        return self._read("pushes.jsonl")

    def log_dispatch(self, workflow: str, ref: str, inputs: Mapping[str, Any], by: str) -> None:
        """One accepted workflow dispatch: the workflow file, the ref it runs on, its inputs."""
        self._append(
            "dispatches.jsonl",
            {"workflow": workflow, "ref": ref, "inputs": dict(inputs), "token": by},
        )

    def dispatches(self) -> list[dict[str, Any]]:
        """Every accepted workflow dispatch, oldest first."""
        return self._read("dispatches.jsonl")

    # Checks on commits.
    def set_checks(self, sha: str, checks: Mapping[str, str]) -> None:
        """Record check results on a commit (later results of a check replace earlier ones)."""
        path = self.root / "statuses.json"
        with (self.root / "statuses.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            statuses = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            statuses.setdefault(sha, {}).update(checks)
            path.write_text(json.dumps(statuses, indent=2), encoding="utf-8")

    def checks(self, sha: str) -> dict[str, str]:
        """The checks recorded on a commit: ``{"workflow / job": result}``."""
        path = self.root / "statuses.json"
        if not path.is_file():
            return {}
        recorded: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        return recorded.get(sha, {})

    # Settings, protection and permissions the harness sets for the stand-ins to enforce.
    def settings(self) -> dict[str, bool]:
        """The repository settings (GitHub's defaults where none was set)."""
        return {**DEFAULT_SETTINGS, **self._json("settings.json", {})}

    def set_settings(self, settings: Mapping[str, bool]) -> None:
        """Replace the repository settings."""
        self._write("settings.json", dict(settings))

    def protection(self, branch: str) -> Protection | None:
        """The protection rule of ``branch``, if any."""
        rule = self._json("protection.json", {}).get(branch)
        if rule is None:
            return None
        return Protection(
            tuple(rule["required_checks"]),
            tuple(rule["bypass"]),
            bool(rule["strict"]),
            bool(rule["ruleset"]),
        )

    def set_protection(self, rules: Mapping[str, Protection]) -> None:
        """Replace the branch protection rules."""
        self._write("protection.json", {branch: asdict(rule) for branch, rule in rules.items()})

    def job_scopes(self, job: str) -> dict[str, str] | None:
        """The ``GITHUB_TOKEN`` scopes of a job of the running workflow (None: unknown)."""
        scopes: dict[str, dict[str, str]] = self._json("permissions.json", {})
        return scopes.get(job)

    def caller_scopes(self, kind: str) -> dict[str, str] | None:
        """A caller's token scopes: its job's (``GITHUB_JOB``) for a workflow token, else None."""
        return self.job_scopes(os.environ.get("GITHUB_JOB", "")) if kind == "workflow" else None

    def set_job_scopes(self, scopes: Mapping[str, Mapping[str, str]]) -> None:
        """The running workflow's jobs and their token scopes."""
        self._write("permissions.json", {job: dict(s) for job, s in scopes.items()})

    def _json(self, name: str, default: Any) -> Any:
        path = self.root / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default

    def _write(self, name: str, document: object) -> None:
        (self.root / name).write_text(json.dumps(document, indent=2), encoding="utf-8")
