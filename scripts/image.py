"""Containerize a Bento archive and push the image: ``python -m scripts.image`` (``make image``).

``bentoml containerize`` needs a Docker engine. Without one (act on this platform, a
self-hosted runner without Docker) the step says so in a workflow notice and exits 0: the
Bento archive stays the release artifact. It never skips silently.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scripts.deploy import DeployError, bento_tag


def docker_available() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Build (and push) the image, or explain why not."""
    parser = argparse.ArgumentParser(prog="python -m scripts.image", description=__doc__)
    parser.add_argument("--bento-file", type=Path, required=True)
    parser.add_argument("--push", default=None, help="image reference to tag and push")
    args = parser.parse_args(argv)
    try:
        tag = bento_tag(args.bento_file)
    except DeployError as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    if not docker_available():
        print(
            f"::notice::image: SKIPPED containerizing {tag}: no Docker engine on this runner "
            "(`bentoml containerize` needs one; GitHub-hosted runners have it). "
            f"The release artifact is {args.bento_file}."
        )
        return 0
    image = args.push or tag.replace(":", "-")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BENTOML_HOME": home}
        commands = [
            ["bentoml", "import", str(args.bento_file.resolve())],
            ["bentoml", "containerize", tag, "--image-tag", image],
        ]
        if args.push:
            commands.append(["docker", "push", image])
        for command in commands:
            print("image: " + " ".join(command), flush=True)
            if subprocess.run(command, env=env, check=False).returncode != 0:
                print(f"image: {' '.join(command[:2])} failed", file=sys.stderr)
                return 1
    print(f"image: {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
