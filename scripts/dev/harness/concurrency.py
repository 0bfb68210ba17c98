"""GitHub's concurrency groups: who runs, who waits, who is cancelled.

A pure model (tested in ``make test-fast``) of the rules in GitHub's docs, "Control the
concurrency of workflows and jobs", and the changelog of 2026-05-07 (``queue: max``):

* within a group, one entry runs; a job waiting for an environment's reviewer is already in
  its group and holds it (it "runs": the wait is a deployment protection rule evaluated
  after the job was assigned to the group — reports in elizaOS/eliza#18092 and
  hypothesis/lms#4533 of hours-long holds);
* ``queue: single`` (the default) keeps one pending entry: a newcomer replaces it, and the
  replaced entry ends **cancelled** (not failed);
* ``queue: max`` keeps up to 100 pending entries in order (it requires
  ``cancel-in-progress`` to be false);
* ``cancel-in-progress: true`` cancels the running entry when a newcomer arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.workflows import Concurrency

MAX_QUEUE = 100


@dataclass
class Entry:
    """A job in a group: ``name`` as GitHub shows it (``workflow / job``) and its state."""

    name: str
    state: str = "pending"  # pending -> running -> completed, or cancelled


@dataclass
class Group:
    """One concurrency group's entries, in arrival order."""

    name: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def running(self) -> Entry | None:
        """The entry that holds the group (it may be waiting for a reviewer)."""
        return next((e for e in self.entries if e.state == "running"), None)

    @property
    def pending(self) -> list[Entry]:
        """The entries waiting for the group, oldest first."""
        return [e for e in self.entries if e.state == "pending"]

    def arrive(self, name: str, spec: Concurrency) -> Entry:
        """A job enters the group; what GitHub does to the others; the newcomer's entry.

        Raises:
            ActError: For ``queue: max`` with ``cancel-in-progress`` (GitHub refuses the file).
        """
        if spec.queue == "max" and spec.cancel_in_progress:
            raise ActError(f"{spec.group}: queue: max requires cancel-in-progress: false")
        entry = Entry(name)
        running = self.running
        if running is not None and spec.cancel_in_progress:
            running.state = "cancelled"
            running = None
        if spec.queue == "max":
            if len(self.pending) >= MAX_QUEUE:
                self.pending[0].state = "cancelled"
        else:
            for waiting in self.pending:
                waiting.state = "cancelled"
        self.entries.append(entry)
        if running is None:
            self._start_next()
        return entry

    def finish(self, name: str) -> None:
        """The running entry ``name`` completes (or its reviewer rejects it); the next starts."""
        running = self.running
        if running is None or running.name != name:
            raise ActError(f"{self.name}: {name} is not the running entry")
        running.state = "completed"
        self._start_next()

    def _start_next(self) -> None:
        if self.running is None and self.pending:
            self.pending[0].state = "running"

    def states(self) -> dict[str, str]:
        """Each entry's state, by name (the latest entry of a name wins)."""
        return {entry.name: entry.state for entry in self.entries}
