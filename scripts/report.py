"""The PR report: ``python -m scripts.report --against main --out reports/pr_report.md``.

One Markdown file (:mod:`scripts.ci.pr_report`) for the sticky PR comment: the gates, the
metrics and params diffs against ``--against``, the figures and a link to the run. With
``GITHUB_STEP_SUMMARY`` set, the same Markdown is appended to the job summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from scripts.ci.github import GitHubContext
from scripts.ci.pr_report import build


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report (and the job summary on GitHub)."""
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__)
    parser.add_argument("--gates", type=Path, default=Path("reports/gates.json"))
    parser.add_argument("--against", default="main", help="git reference to compare with")
    parser.add_argument("--figures-url", default=None, help="base URL of the PNG figures")
    parser.add_argument("--artifact-url", default=None, help="link to the figures' artifact")
    parser.add_argument("--out", type=Path, default=Path("reports/pr_report.md"))
    args = parser.parse_args(argv)
    context = GitHubContext.from_env()
    try:
        markdown = build(
            args.gates, args.against, args.figures_url, args.artifact_url, context.run_url
        )
    except (OSError, RuntimeError, json.JSONDecodeError) as error:
        print(f"report: {error}", file=sys.stderr)
        return ExitCode.NOT_EVALUATED
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown, encoding="utf-8")
    if context.step_summary:
        with Path(context.step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
    print(f"report: {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
