"""GitHub's concurrency groups: who runs, who waits, who is cancelled.

A pure model (tested in ``make test-fast``) of the rules in GitHub's docs, "Control the
concurrency of workflows and jobs", and the changelog of 2026-05-07 (``queue: max``):

* within a group, one entry runs and the others are pending;
* ``queue: single`` (the default) keeps one pending entry: a newcomer replaces it, and the
  replaced entry ends **cancelled** (not failed) — "any previously pending job or workflow
  in the concurrency group will be canceled";
* ``queue: max`` keeps up to 100 pending entries in order; when the queue is full, the
  newcomer is cancelled; it requires ``cancel-in-progress`` to be false;
* ``cancel-in-progress: true`` cancels the running entry when a newcomer arrives;
* a job waiting for its environment's required reviewer is a **pending** entry, replaced
  like any other (hypothesis/lms#4533: job-level groups, jobs awaiting approval cancelled
  by newer runs); it starts only once approved (:meth:`Group.approve`).

A workflow-level ``concurrency:`` is one entry for the whole run, held until every job of
the run is done (elizaOS/eliza#18092: a run waiting for a reviewer holds its workflow's
group for hours); a job-level one is an entry per job. Feed each in its own :class:`Group`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scripts.dev.harness.errors import ActError
from scripts.dev.harness.workflows import Concurrency

MAX_QUEUE = 100


@dataclass
class Entry:
    """A run or a job in a group: ``name`` as GitHub shows it, and its state."""

    name: str
    state: str = "pending"  # pending -> running -> completed; or cancelled
    # False while the entry waits for a required reviewer (it cannot start).
    approved: bool = True


@dataclass
class Group:
    """One concurrency group's entries, in arrival order."""

    name: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def running(self) -> Entry | None:
        """The entry that holds the group."""
        return next((e for e in self.entries if e.state == "running"), None)

    @property
    def pending(self) -> list[Entry]:
        """The entries waiting for the group (or for their reviewer), oldest first."""
        return [e for e in self.entries if e.state == "pending"]

    def arrive(self, name: str, spec: Concurrency, reviewer: bool = False) -> Entry:
        """An entry joins the group; what GitHub does to the others; the newcomer's entry.

        Args:
            name: The run or job (``workflow / job``).
            spec: Its concurrency settings.
            reviewer: It waits for an environment's required reviewer before it can start.

        Raises:
            ActError: For ``queue: max`` with ``cancel-in-progress`` (GitHub refuses the file).
        """
        if spec.queue == "max" and spec.cancel_in_progress:
            raise ActError(f"{spec.group}: queue: max requires cancel-in-progress: false")
        entry = Entry(name, approved=not reviewer)
        running = self.running
        if running is not None and spec.cancel_in_progress:
            running.state = "cancelled"
        if spec.queue == "max":
            if len(self.pending) >= MAX_QUEUE:
                entry.state = "cancelled"
        else:
            for waiting in self.pending:
                waiting.state = "cancelled"
        self.entries.append(entry)
        self._start_next()
        return entry

    def approve(self, name: str) -> None:
        """A reviewer approves the pending entry ``name``; it starts when the group is free."""
        for entry in self.pending:
            if entry.name == name:
                entry.approved = True
        self._start_next()

    def finish(self, name: str) -> None:
        """The running entry ``name`` completes; the next approved pending entry starts."""
        running = self.running
        if running is None or running.name != name:
            raise ActError(f"{self.name}: {name} is not the running entry")
        running.state = "completed"
        self._start_next()

    def _start_next(self) -> None:
        if self.running is None:
            ready = [e for e in self.pending if e.approved]
            if ready:
                ready[0].state = "running"

    def states(self) -> dict[str, str]:
        """Each entry's state, by name (the latest entry of a name wins)."""
        return {entry.name: entry.state for entry in self.entries}
