"""The exit statuses every command of the project shares, so a workflow reads them one way."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means, the same number in every CLI."""

    OK = 0
    """Done; every check passed (no drift, gates passed, deployment converged)."""
    FOUND_PROBLEM = 1
    """It ran and found a problem, or what it was asked to do failed.

    A gate failed, drift was found, a deployment did not converge, a push was refused.
    """
    NOT_EVALUATED = 2
    """It could not run or judge: bad input, a missing file, an unreachable service.

    argparse exits 2 on a usage error too.
    """
