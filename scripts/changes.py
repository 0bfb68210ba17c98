"""Does this pull request change the model? ``python -m scripts.changes --base origin/main``.

train.yml's first step (standard library only: it runs before any install). Writes
``model=true|false`` to ``$GITHUB_OUTPUT`` and a line to the job summary: a PR that touches
nothing the model is built or judged from (:mod:`scripts.ci.changes`) reports success with
"nothing to train". Any event but ``pull_request`` (a manual run) always trains.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.changes import model_changes


def changed_files(base: str) -> list[str]:
    """Files HEAD changes since its merge base with ``base`` (the PR's diff)."""
    result = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(f"git diff {base}...HEAD failed: {result.stderr.strip()}")
    return result.stdout.split()


def write(path: str | None, line: str) -> None:
    """Append a line to a GitHub file command (``$GITHUB_OUTPUT``, the step summary)."""
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the verdict and set the ``model`` output; exit 2 when git cannot tell."""
    parser = argparse.ArgumentParser(prog="python -m scripts.changes", description=__doc__)
    parser.add_argument("--base", required=True, help="the base branch, e.g. origin/main")
    parser.add_argument("--event", default=os.environ.get("GITHUB_EVENT_NAME", "pull_request"))
    args = parser.parse_args(argv)
    if args.event != "pull_request":
        files, verdict = ["(every file)"], f"a {args.event} run always trains"
    else:
        try:
            files = model_changes(changed_files(args.base))
        except OSError as error:
            print(f"changes: could not compare with {args.base}: {error}", file=sys.stderr)
            return ExitCode.NOT_EVALUATED
        verdict = (
            f"changes the model ({len(files)} file(s): {', '.join(files[:8])})"
            if files
            else "nothing to train: no change to the pipeline, its data, params, "
            "dependencies or gates"
        )
    print(f"changes: {verdict}")
    write(os.environ.get("GITHUB_OUTPUT"), f"model={'true' if files else 'false'}")
    write(os.environ.get("GITHUB_STEP_SUMMARY"), f"**Model:** {verdict}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
