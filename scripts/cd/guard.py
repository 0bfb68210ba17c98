"""Only main's own runs change an environment: the deploy commands' last line of defence.

What keeps a branch off the production host is GitHub's configuration (docs/security.md):
production's secrets in environments that only ``main`` may use, the deploy runner in a
runner group limited to main's deploying workflows, approval for outside contributors.
A branch's workflow file can still name the deploy runner (``pull_request`` and ``push``
run the event's commit's file); this check makes the driver itself refuse such a run. A
branch that also edits this file gets past it, which is why it is defence in depth only.

Outside GitHub Actions (a laptop, the tests) nothing is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

# Commands that start, stop or change what an environment serves.
CHANGING = frozenset({"release", "apply", "reconcile", "down"})
# Events only the repository's own people and schedules start, running main's files when
# the ref is main; every event a pull request can cause is missing on purpose.
TRUSTED_EVENTS = frozenset({"push", "schedule", "workflow_dispatch"})
DEPLOY_REF = "refs/heads/main"


def refusal(command: str, env: str, environ: Mapping[str, str]) -> str | None:
    """Why a GitHub Actions run may not carry out ``command`` on ``env``, or None."""
    if command not in CHANGING or environ.get("GITHUB_ACTIONS") != "true":
        return None
    event = environ.get("GITHUB_EVENT_NAME", "")
    ref = environ.get("GITHUB_REF", "")
    if event in TRUSTED_EVENTS and ref == DEPLOY_REF:
        return None
    return (
        f"refusing to {command} {env} from a {event or 'unknown'} run on {ref or 'no ref'}: "
        f"only {', '.join(sorted(TRUSTED_EVENTS))} runs on {DEPLOY_REF} deploy "
        "(docs/security.md)"
    )
