import numpy as np
import torch

from pipeline.torch_model import DistributedContext, TabularMLPClassifier, resolve_device
from tests.helpers import make_params


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    return X, y


def _config(**changes):
    overrides = {
        f"train.torch.{k}": v
        for k, v in {"epochs": 4, "device": "cpu", "lr": 0.02, **changes}.items()
    }
    return make_params(**overrides).train.torch


def test_fit_learns_and_repeats_exactly_on_cpu():
    X, y = _data()
    first = TabularMLPClassifier(_config(), seed=3).fit(X, y, eval_set=_data(200, 1))
    second = TabularMLPClassifier(_config(), seed=3).fit(X, y, eval_set=_data(200, 1))
    proba = first.predict_proba(X)
    assert proba.shape == (600, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(proba, second.predict_proba(X))
    assert (first.predict(X) == y).mean() > 0.8
    assert [h["epoch"] for h in first.history_] == [1.0, 2.0, 3.0, 4.0]
    assert all("val_loss" in h for h in first.history_)


def test_early_stopping_keeps_the_best_epoch():
    X, y = _data(200)
    model = TabularMLPClassifier(_config(epochs=30, patience=1, lr=0.05), seed=0)
    model.fit(X, y, eval_set=_data(100, 2))
    losses = [h["val_loss"] for h in model.history_]
    assert len(losses) < 30
    assert model._loss(model.module_, _data(100, 2), torch.device("cpu")) == min(losses)


def test_device_resolution_without_cuda():
    context = DistributedContext(rank=0, local_rank=0, world_size=1)
    assert resolve_device("auto", context).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", context).type == "cpu"
