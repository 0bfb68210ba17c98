"""The monitoring loop closes: a drifted, labelled window → retraining PR → a better model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.generate import Window, generate
from pipeline.onnx_model import OnnxClassifier, feeds_from_frame
from pipeline.params import load_params
from scripts.dev.harness.github.tokens import WORKFLOW_TOKEN
from scripts.dev.harness.sandbox import Sandbox, create_sandbox
from tests.helpers import SMALL

pytestmark = pytest.mark.integration


def scored(sandbox: Sandbox, model: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The window as the service would log it: probability and predicted class added."""
    params = load_params(sandbox.work / "params.yaml")
    probability = OnnxClassifier(model).predict_proba(feeds_from_frame(frame, params.data.schema))
    return frame.assign(
        probability=probability,
        prediction=(probability >= params.evaluate.threshold).astype(np.int64),
    )


def roc_auc(model: Path, frame: pd.DataFrame, sandbox: Sandbox) -> float:
    params = load_params(sandbox.work / "params.yaml")
    probability = OnnxClassifier(model).predict_proba(feeds_from_frame(frame, params.data.schema))
    return float(roc_auc_score(frame[params.data.schema.target], probability))


def test_drifted_window_opens_one_retraining_pr_and_retraining_recovers(tmp_path: Path) -> None:
    sandbox = create_sandbox(tmp_path / "sandbox")
    sandbox.set_params(SMALL)
    sandbox.commit_all("small data")
    sandbox.baseline()
    old_model = tmp_path / "old.onnx"
    shutil.copy(sandbox.work / "models" / "model.onnx", old_model)
    window = scored(sandbox, old_model, generate(2000, 21, Window(drift="concept")))
    window_file = tmp_path / "window.parquet"
    window.to_parquet(window_file)
    # No App token or PAT: drift.yml falls back to the run's GITHUB_TOKEN, which may open a
    # PR only where the repository allows Actions to (Settings -> Actions; off by default).
    env = sandbox.github_env(WORKFLOW_TOKEN)
    sandbox.settings["actions_can_create_pull_requests"] = True
    sandbox.publish_settings()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=sandbox.work, env=env, capture_output=True, text=True, check=False
        )

    judged = run(sys.executable, "-m", "monitoring.drift", "--current", str(window_file))
    assert judged.returncode == 1, judged.stdout + judged.stderr
    assert "performance drop" in judged.stdout
    # Main's model arrived minutes ago: too young to retrain (default 24 h).
    young = run(sys.executable, "-m", "monitoring.retrain", "--window", "w0")
    assert young.returncode == 0, young.stderr
    assert "main's model is 0.0 h old (< monitoring.retraining.min_model_age_hours=24)" in (
        young.stdout
    )
    assert sandbox.github()["pulls"] == []
    sandbox.set_params({"monitoring.retraining.min_model_age_hours": 0})
    sandbox.commit_all("Retrain whatever the model's age")
    opened = run(sys.executable, "-m", "monitoring.retrain", "--window", "w1")
    assert opened.returncode == 0, opened.stderr
    assert "opened https://github.invalid/gitops-ml/sandbox/pull/100" in opened.stdout
    assert "GitHub runs no workflow on it" in opened.stdout  # no App token or PAT here
    # The next day's window drifts too: at most one retraining PR is open at a time.
    for window in ("w1", "w2"):
        again = run(sys.executable, "-m", "monitoring.retrain", "--window", window)
        assert again.returncode == 0, again.stderr
        assert "a retraining PR is already open (https://github.invalid/" in again.stdout
    (pull,) = sandbox.github()["pulls"]
    assert pull["head"] == "retrain/w1"
    assert (pull["token"], pull["triggers_workflows"]) == ("workflow", False)
    assert pull["body"].startswith("## Drift report: DRIFT: performance drop")
    shown = subprocess.run(
        ["git", "--git-dir", str(sandbox.root / "origin.git"), "show", "--stat", "retrain/w1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "data/external/windows/w1.parquet.dvc" in shown
    # The branch in a fresh clone: the window comes from the DVC remote, the model retrains.
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "-b", "retrain/w1", str(sandbox.root / "origin.git"), str(clone)],
        check=True,
    )
    for command in (["dvc", "pull", "--allow-missing"], ["dvc", "repro"]):
        result = subprocess.run(
            command, cwd=clone, env=sandbox.env(), capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    ingested = pd.read_parquet(clone / "data" / "raw" / "dataset.parquet")
    assert len(ingested) == 2000 + 2000
    fresh = generate(2000, 22, Window(drift="concept"))
    before, after = roc_auc(old_model, fresh, sandbox), roc_auc(
        clone / "models" / "model.onnx", fresh, sandbox
    )
    assert after > before + 0.02, (before, after)
