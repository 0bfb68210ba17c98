"""The PR report: one Markdown file for the sticky PR comment and the job summary.

:func:`build` (``python -m scripts.report``) renders:

* the gates table (from ``reports/gates.json``, written by ``scripts.gates``);
* the metrics diff against the reference (``dvc metrics diff <ref> --json --all``);
* the params diff against the reference (``dvc params diff <ref> --json``);
* the confusion-matrix, ROC and precision-recall figures — as images under
  ``--figures-url`` when given (e.g. a branch of the repository), otherwise as their paths
  in the run's artifact, linked with ``--artifact-url``: nothing goes to a third-party host;
* a link to the workflow run (from GitHub's ``GITHUB_*`` variables).

Posting it is :mod:`scripts.ci.github`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.ci.dvc_diff import flat_diff

WATERMARK = "gitops-ml model report"
FIGURES = ("confusion_matrix.png", "roc.png", "precision_recall.png")


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


def _comparison_section(gates: Mapping[str, Any]) -> list[str]:
    comparisons = gates.get("comparisons") or []
    lines = ["", "### Candidate vs reference on the same test rows", ""]
    if not comparisons:
        why = gates.get("reference_why") or "no reference model"
        return [*lines, f"No paired comparison: {why}."]
    first = comparisons[0]
    lines += [
        f"Reference: {gates.get('reference_why')}, commit `{gates.get('reference')}`. Both models "
        f"scored the same {first['rows']} test rows; interval: paired bootstrap "
        f"({first['confidence']:.0%}).",
        "",
        "| metric | reference | candidate | difference | interval | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c['metric']} | {c['reference']:.4f} | {c['candidate']:.4f} "
            f"| {c['difference']:+.4f} | {c['low']:+.4f} to {c['high']:+.4f} | {c['verdict']} |"
        )
    return lines


def _fairness_section(gates: Mapping[str, Any]) -> list[str]:
    groups = gates.get("groups") or []
    if not groups:
        return []
    lines = [
        "",
        "### By group (test rows)",
        "",
        "| column | group | rows | ROC AUC | recall | selection rate |",
        "|---|---|---|---|---|---|",
    ]
    for row in groups:
        lines.append(
            f"| {row['column']} | {row['group']} | {row['rows']} | {_number(row['roc_auc'])} "
            f"| {_number(row['recall'])} | {_number(row['selection_rate'])} |"
        )
    return lines


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
    lines += _comparison_section(gates)
    lines += _fairness_section(gates)
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


def build(
    gates_path: Path,
    against: str,
    figures_url: str | None,
    artifact_url: str | None,
    run_url: str | None,
) -> str:
    """Read the gates' JSON and the dvc diffs against ``against``; the report's Markdown.

    Raises:
        OSError, json.JSONDecodeError: The gates' JSON is missing or malformed.
        RuntimeError: dvc could not diff against the reference.
    """
    gates = json.loads(gates_path.read_text(encoding="utf-8"))
    metrics = flat_diff("metrics", against)
    params = flat_diff("params", against)
    return render(gates, metrics, params, against, figures_url, run_url, artifact_url)
