"""The torch family through DVC, and its DistributedDataParallel path (gloo, 2 processes)."""

import json
from collections.abc import Callable
from pathlib import Path

import joblib
import pandas as pd
import pytest

from tests.helpers import Repo, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TORCH = {"train.model": "torch", "train.torch.device": "cpu"}


@pytest.fixture(scope="module")
def torch_run(
    tmp_path_factory: pytest.TempPathFactory, trained_copy: Callable[[Path], Repo]
) -> Repo:
    """A copy of the trained project switched to the torch family, then reproduced.

    Its data stages are the trained copy's (the data params are the same): `dvc repro`
    runs train, evaluate and export.
    """
    repo = trained_copy(tmp_path_factory.mktemp("torch") / "repo")
    repo.set_params(TORCH)
    repo.run("git", "commit", "-q", "-am", "torch model for tests")
    repo.run("dvc", "repro")
    return repo


def test_torch_model_trains_and_repeats_to_1e6(torch_run: Repo, tmp_path):
    first = json.loads((torch_run.path / "metrics.json").read_text())
    assert first["model"]["roc_auc"] > 0.7
    other = make_repo(tmp_path / "again", TORCH)
    other.run("dvc", "repro")
    second = json.loads((other.path / "metrics.json").read_text())
    for name, value in first["model"].items():
        assert second["model"][name] == pytest.approx(value, abs=1e-6), name


def test_ddp_with_two_gloo_processes_saves_one_model(torch_run: Repo, tmp_path):
    copy = torch_run.clone_to(tmp_path / "ddp")
    copy.set_params({"train.torch.gpus": 2})
    result = copy.run("dvc", "repro", "train")
    assert "DistributedDataParallel over 2 processes" in result.stdout
    assert result.stdout.count("train: torch model -> models/model.joblib") == 1
    model = joblib.load(copy.path / "models/model.joblib")
    assert model.named_steps["classifier"].world_size_ == 2
    test = pd.read_parquet(copy.path / "data/split/test.parquet")
    probability = model.predict_proba(test.drop(columns=["default", "event_time"]))[:, 1]
    assert ((probability > 0) & (probability < 1)).all()
