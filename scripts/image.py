"""Containerize a Bento archive and push the image: ``python -m scripts.image`` (``make image``).

``bentoml containerize`` needs a Docker engine. Without one (act on this platform, a
self-hosted runner without Docker) the step says so in a workflow notice and exits 0: the
Bento archive stays the release artifact. It never skips silently.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.cd.bento_store import bento_tag, containerize, docker_available
from scripts.cd.errors import DeliveryError


def main(argv: Sequence[str] | None = None) -> int:
    """Build (and push) the image, or explain why not."""
    parser = argparse.ArgumentParser(prog="python -m scripts.image", description=__doc__)
    parser.add_argument("--bento-file", type=Path, required=True)
    parser.add_argument("--push", default=None, help="image reference to tag and push")
    args = parser.parse_args(argv)
    try:
        tag = bento_tag(args.bento_file)
        if not docker_available():
            print(
                f"::notice::image: SKIPPED containerizing {tag}: no Docker engine on this runner "
                "(`bentoml containerize` needs one; GitHub-hosted runners have it). "
                f"The release artifact is {args.bento_file}."
            )
            return ExitCode.OK
        image = args.push or tag.replace(":", "-")
        containerize(args.bento_file, image, push=bool(args.push))
    except DeliveryError as error:
        print(f"image: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    print(f"image: {image}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
