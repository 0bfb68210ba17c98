"""Smoke-test a running service: ``python -m scripts.smoke --url http://127.0.0.1:3000``.

The checks are :func:`scripts.cd.checks.check`. With ``--serve TARGET`` it first starts
``bentoml serve TARGET`` on a free loopback port and stops it afterwards. Exits 1 naming
the failed check; the deploy stage runs it against staging.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.cd.checks import check, served, wait_ready
from scripts.cd.errors import SmokeError
from scripts.cd.processes import free_port

SERVER_LOG = Path("logs/smoke-serve.log")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; exit 1 naming the failed check."""
    parser = argparse.ArgumentParser(prog="python -m scripts.smoke", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running service")
    target.add_argument("--serve", help="start `bentoml serve SERVE` first (a Bento tag or module)")
    args = parser.parse_args(argv)
    try:
        if args.serve:
            # The server's own log (it logs the rejected request's traceback) goes to a file.
            SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
            print(f"smoke: serving {args.serve} (server log: {SERVER_LOG})")
            with served(args.serve, free_port(), log=SERVER_LOG) as url:
                passed = check(url)
        else:
            wait_ready(args.url)
            passed = check(args.url)
    except SmokeError as error:
        print(f"smoke: FAILED {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    print(f"smoke: passed {len(passed)} checks ({', '.join(passed)})")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
