"""The harness's errors."""

from __future__ import annotations


class ActError(RuntimeError):
    """The harness could not run act as asked, or GitHub would refuse; the message says why."""
