from scripts.ci.github import GitHubContext
from scripts.ci.pr_report import WATERMARK, render

GATES = {
    "passed": False,
    "gates": [
        {"name": "floor_roc_auc", "passed": False, "value": 0.71, "threshold": 0.75},
        {"name": "model_size_mb", "passed": True, "value": 0.08, "threshold": 50.0},
    ],
}
METRICS = {
    "model.roc_auc": {"old": 0.79, "new": 0.71, "diff": -0.08},
    "model.f1": {"old": None, "new": 0.3},
    "threshold": {"old": 0.5, "new": 0.5, "diff": 0},
}
PARAMS = {"train.sklearn.max_depth": {"old": 3, "new": 1}}


def test_report_has_gates_metrics_params_figures_and_run_link():
    text = render(GATES, METRICS, PARAMS, "main", None, "https://github.com/o/r/actions/runs/7")
    assert text.startswith(f"## {WATERMARK}\n")
    assert "**❌ gates failed** — compared with `main`." in text
    assert "| floor_roc_auc | **FAIL** | 0.7100 | 0.7500 |" in text
    assert "| model_size_mb | PASS | 0.0800 | 50.0000 |" in text
    assert "| model.roc_auc | 0.7900 | 0.7100 | -0.0800 |" in text
    assert "| model.f1 | — | 0.3000 | new |" in text
    assert "| threshold | 0.5" not in text  # the decision threshold is a setting, not a metric
    assert "| train.sklearn.max_depth | 3 | 1 |" in text
    assert "- roc: `reports/figures/roc.png` in the run's artifacts" in text
    assert text.rstrip().endswith("[Workflow run](https://github.com/o/r/actions/runs/7)")


def test_figures_link_to_the_given_base_url_and_empty_diffs_are_said():
    text = render({"passed": True, "gates": []}, {}, {}, "main", "https://host/figs/", None)
    assert "![confusion matrix](https://host/figs/confusion_matrix.png)" in text
    assert "No metrics to compare." in text
    assert "No parameter changed." in text
    assert "Workflow run" not in text


def test_run_url_needs_every_github_variable():
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "9",
    }
    assert GitHubContext.from_env(env).run_url == "https://github.com/o/r/actions/runs/9"
    assert GitHubContext.from_env({**env, "GITHUB_RUN_ID": ""}).run_url is None
