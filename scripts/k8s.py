"""Kubernetes manifests from the state files: ``python -m scripts.k8s render|validate``.

``render --env ENV`` writes ``bentos/deployments/k8s/<env>/`` from
``bentos/deployments/<env>.yaml``; ``validate [DIR...]`` checks manifests offline, no
cluster needed (:mod:`scripts.cd.kubernetes`). Exits 1 listing every problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pipeline.exit_codes import ExitCode
from scripts.cd.kubernetes import image_repository, render_environment, validate_files
from scripts.cd.state import STATE_DIR, StateError, load_state, state_path


def main(argv: Sequence[str] | None = None) -> int:
    """Render or validate; exit 1 listing every problem."""
    parser = argparse.ArgumentParser(prog="python -m scripts.k8s", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    renderer = commands.add_parser("render")
    renderer.add_argument("--env", action="append", required=True)
    renderer.add_argument("--state-dir", type=Path, default=STATE_DIR)
    renderer.add_argument(
        "--image-repository",
        default=image_repository(),
    )
    renderer.add_argument("--namespace", default="gitops-ml")
    renderer.add_argument("--gateway", default="gitops-ml-gateway")
    checker = commands.add_parser("validate")
    checker.add_argument("directories", type=Path, nargs="*", default=[STATE_DIR / "k8s"])
    args = parser.parse_args(argv)
    problems: list[str] = []
    try:
        if args.command == "render":
            for env in args.env:
                state = load_state(state_path(env, args.state_dir))
                directory = args.state_dir / "k8s" / env
                paths, found = render_environment(
                    state, directory, args.image_repository, args.namespace, args.gateway
                )
                problems += found
                if not found:
                    print(f"k8s: {env}: {len(paths)} manifests in {directory}")
        else:
            count, problems = validate_files(args.directories)
            print(f"k8s: {count} files checked")
    except (StateError, OSError, yaml.YAMLError) as error:
        print(f"k8s: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    for problem in problems:
        print(f"k8s: {problem}", file=sys.stderr)
    return ExitCode.FOUND_PROBLEM if problems else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
