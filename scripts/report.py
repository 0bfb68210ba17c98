"""The PR report: one Markdown file for the sticky PR comment and the job summary.

``python -m scripts.report --against main --out reports/pr_report.md`` renders:

* the gates table (from ``reports/gates.json``, written by ``scripts.gates``);
* the metrics diff against the reference (``dvc metrics diff <ref> --json --all``);
* the params diff against the reference (``dvc params diff <ref> --json``);
* the confusion-matrix, ROC and precision-recall figures — as images under
  ``--figures-url`` when given (e.g. a branch of the repository), otherwise as their paths
  in the run's artifact, linked with ``--artifact-url``: nothing goes to a third-party host;
* a link to the workflow run (from GitHub's ``GITHUB_*`` variables).

With ``GITHUB_STEP_SUMMARY`` set, the same Markdown is appended to the job summary.
Posting it is the CML/gh wrapper's job, not this script's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.gates import dvc_diff

WATERMARK = "gitops-ml model report"
FIGURES = ("confusion_matrix.png", "roc.png", "precision_recall.png")


def flat_diff(kind: str, reference: str) -> dict[str, dict[str, Any]]:
    """:func:`scripts.gates.dvc_diff` with the files merged: ``{key: entry}``."""
    return {
        key: entry for values in dvc_diff(kind, reference).values() for key, entry in values.items()
    }


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _change(entry: Mapping[str, Any]) -> str:
    diff = entry.get("diff")
    if isinstance(diff, int | float) and not isinstance(diff, bool):
        return f"{diff:+.4f}" if diff else "0"
    return "new" if entry.get("old") is None else "—"


def render(
    gates: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    reference: str,
    figures_url: str | None,
    run_url: str | None,
    artifact_url: str | None = None,
) -> str:
    """The report's Markdown.

    Args:
        gates: ``reports/gates.json``.
        metrics: Flattened metrics diff (key -> {"old", "new", "diff"}).
        params: Flattened params diff (only changed params).
        reference: The git reference compared against.
        figures_url: Base URL of the PNG figures, or None to list artifact paths.
        run_url: Link to the workflow run, if known.
        artifact_url: Link to the artifact holding the figures, if known.

    Returns:
        Markdown, starting with the watermark title the sticky comment is found by.
    """
    verdict = "✅ all gates passed" if gates.get("passed") else "❌ gates failed"
    lines = [f"## {WATERMARK}", "", f"**{verdict}** — compared with `{reference}`.", ""]
    lines += ["### Gates", "", "| gate | result | value | threshold |", "|---|---|---|---|"]
    for gate in gates.get("gates", []):
        mark = "PASS" if gate["passed"] else "**FAIL**"
        value, threshold = _number(gate["value"]), _number(gate["threshold"])
        lines.append(f"| {gate['name']} | {mark} | {value} | {threshold} |")
    lines += ["", f"### Metrics (test split) vs `{reference}`", ""]
    rows = sorted(key for key in metrics if not key.startswith("threshold"))
    if rows:
        lines += ["| metric | " + reference + " | this PR | change |", "|---|---|---|---|"]
        for key in rows:
            entry = metrics[key]
            old, new = _number(entry.get("old")), _number(entry.get("new"))
            lines.append(f"| {key} | {old} | {new} | {_change(entry)} |")
    else:
        lines.append("No metrics to compare.")
    lines += ["", f"### Params changed vs `{reference}`", ""]
    if params:
        lines += ["| param | " + reference + " | this PR |", "|---|---|---|"]
        for key in sorted(params):
            entry = params[key]
            lines.append(f"| {key} | {_number(entry.get('old'))} | {_number(entry.get('new'))} |")
    else:
        lines.append("No parameter changed.")
    lines += ["", "### Figures", ""]
    for name in FIGURES:
        title = name.removesuffix(".png").replace("_", " ")
        if figures_url:
            lines.append(f"![{title}]({figures_url.rstrip('/')}/{name})")
        else:
            artifact = (
                f"[the run's artifact]({artifact_url})" if artifact_url else "the run's artifacts"
            )
            lines.append(f"- {title}: `reports/figures/{name}` in {artifact}")
    if run_url:
        lines += ["", f"[Workflow run]({run_url})"]
    return "\n".join(lines) + "\n"


def run_url_from_env(env: Mapping[str, str]) -> str | None:
    """The workflow run's URL from GitHub's default variables, if present."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(env.get(key) for key in keys):
        return None
    return (
        f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write the report (and the job summary on GitHub)."""
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__)
    parser.add_argument("--gates", type=Path, default=Path("reports/gates.json"))
    parser.add_argument("--against", default="main", help="git reference to compare with")
    parser.add_argument("--figures-url", default=None, help="base URL of the PNG figures")
    parser.add_argument("--artifact-url", default=None, help="link to the figures' artifact")
    parser.add_argument("--out", type=Path, default=Path("reports/pr_report.md"))
    args = parser.parse_args(argv)
    try:
        gates = json.loads(args.gates.read_text(encoding="utf-8"))
        metrics = flat_diff("metrics", args.against)
        params = flat_diff("params", args.against)
    except (OSError, RuntimeError, json.JSONDecodeError) as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    markdown = render(
        gates,
        metrics,
        params,
        args.against,
        args.figures_url,
        run_url_from_env(os.environ),
        args.artifact_url,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
