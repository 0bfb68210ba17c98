"""Prepare a deploy host: ``python -m scripts.host setup --env staging --env production``.

Installs a systemd unit per environment that starts the environment's supervisord at boot
(:mod:`scripts.cd.systemd`; docs/deploy-host.md): a user unit with lingering by default, or
with ``--system --user NAME`` a system unit run as NAME (as root). Run it as the user the
deploy runner runs as, with the runner's ``GITOPS_ML_RUN_DIR`` (or ``--run-dir``).
``--dry-run`` prints the units and the commands, and writes and runs nothing.

Exits 1 naming the problem: no systemd on this host, a failed ``systemctl``, a bad name.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.cd import systemd
from scripts.cd.errors import DeliveryError


def main(argv: Sequence[str] | None = None) -> int:
    """Install the boot units; exit 1 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m scripts.host", description=__doc__)
    parser.add_argument("command", choices=("setup",))
    parser.add_argument(
        "--env", action="append", required=True, help="an environment (repeat for each)"
    )
    parser.add_argument(
        "--system", action="store_true", help="system units (as root) instead of user units"
    )
    parser.add_argument("--user", help="with --system: the user the units run as")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="the deploy runner's GITOPS_ML_RUN_DIR (default: this one's, else the user's "
        "~/.local/state/gitops-ml)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print, write and run nothing")
    args = parser.parse_args(argv)
    if args.system != bool(args.user):
        parser.error("--system and --user NAME go together (user units need neither)")
    try:
        run_root = (args.run_dir or systemd.default_run_root(args.user, os.environ)).absolute()
        setup = systemd.plan(args.env, run_root, args.user, Path.home(), getpass.getuser())
        systemd.install(setup, system=args.system, dry_run=args.dry_run)
    except (DeliveryError, OSError) as error:
        print(f"host: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    if not args.dry_run:
        print(
            f"host: {', '.join(args.env)} start at boot once a deploy has written their "
            f"configuration under {run_root}; a supervisord running now stays as it is"
        )
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
