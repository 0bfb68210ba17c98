"""Smoke-test a running service: ``python -m scripts.smoke --url http://127.0.0.1:3000``.

The checks are :func:`scripts.cd.checks.check`. With ``--serve TARGET`` it first starts
``bentoml serve TARGET`` on a free loopback port and stops it afterwards. With ``--load``
the live gate follows: a bounded load run whose p95 latency and error rate must stay within
``gates.live`` of params.yaml (release.yml runs it on staging before production). Exits 1
naming the failed check or budget. Its requests are marked synthetic
(``X-Gitops-Synthetic``), so the drift job leaves their records out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, load_params
from scripts.cd.checks import check, live_gate, served, wait_ready
from scripts.cd.errors import SmokeError
from scripts.cd.processes import free_port

SERVER_LOG = Path("logs/smoke-serve.log")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; exit 1 naming the failed check."""
    parser = argparse.ArgumentParser(prog="python -m scripts.smoke", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running service")
    target.add_argument("--serve", help="start `bentoml serve SERVE` first (a Bento tag or module)")
    parser.add_argument(
        "--load", action="store_true", help="then the live gate: a load run within gates.live"
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    args = parser.parse_args(argv)
    if args.load and not args.url:
        parser.error("--load needs --url (a deployed router)")
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
        print(f"smoke: passed {len(passed)} checks ({', '.join(passed)})")
        if args.load:
            budget = load_params(args.params).gates.live
            result, problems = live_gate(args.url, budget)
            print(
                f"live gate: {result.requests} requests at concurrency {budget.concurrency} in "
                f"{result.seconds:.1f} s: p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms "
                f"(budget {budget.p95_ms} ms), {result.errors} errors "
                f"(budget {budget.max_error_rate:.1%})"
            )
            if problems:
                print(f"live gate: FAILED {'; '.join(problems)}", file=sys.stderr)
                return ExitCode.FOUND_PROBLEM
    except SmokeError as error:
        print(f"smoke: FAILED {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    except ParamsError as error:
        print(f"smoke: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
