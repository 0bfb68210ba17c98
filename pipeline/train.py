"""Stage ``train``: fit the preprocessor and the model family chosen by ``train.model``.

``python -m pipeline.train --train data/split/train.parquet --val data/split/val.parquet
--model models/model.joblib``

Both families become one scikit-learn ``Pipeline(preprocess -> classifier)`` so the
following stages use them alike. With ``train.model: torch`` and ``train.torch.gpus > 1``
the command starts itself again under ``torchrun`` with one process per GPU (gloo
processes on a CPU machine); only rank 0 writes the model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.exit_codes import ExitCode
from pipeline.features import build_preprocessor, feature_frame, target_array
from pipeline.io import atomic_path, read_table
from pipeline.params import DEFAULT_PARAMS_PATH, Params, ParamsError, SklearnParams, load_params


def _sklearn_classifier(
    cfg: SklearnParams, seed: int
) -> GradientBoostingClassifier | LogisticRegression:
    if cfg.estimator == "gradient_boosting":
        return GradientBoostingClassifier(
            n_estimators=cfg.n_estimators,
            learning_rate=cfg.learning_rate,
            max_depth=cfg.max_depth,
            subsample=cfg.subsample,
            random_state=seed,
        )
    return LogisticRegression(C=cfg.C, max_iter=1_000, random_state=seed)


def train(train_frame: pd.DataFrame, val_frame: pd.DataFrame, params: Params) -> Pipeline:
    """Fit preprocessing and classifier.

    Args:
        train_frame: Validated training rows.
        val_frame: Validated validation rows (early stopping for the torch family).
        params: All parameters.

    Returns:
        The fitted ``Pipeline(preprocess -> classifier)``.
    """
    schema = params.data.schema
    is_tree = (
        params.train.model == "sklearn" and params.train.sklearn.estimator == "gradient_boosting"
    )
    preprocess = build_preprocessor(schema, scale=not is_tree)
    preprocess.fit(feature_frame(train_frame, schema))
    features = preprocess.transform(feature_frame(train_frame, schema))
    labels = target_array(train_frame, schema)
    if params.train.model == "torch":
        from pipeline.torch_model import TabularMLPClassifier  # torch loads only when used

        val_features = preprocess.transform(feature_frame(val_frame, schema))
        classifier = TabularMLPClassifier(params.train.torch, seed=params.train.seed)
        classifier.fit(features, labels, eval_set=(val_features, target_array(val_frame, schema)))
    else:
        classifier = _sklearn_classifier(params.train.sklearn, params.train.seed)
        classifier.fit(features, labels)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def _relaunch_under_torchrun(argv: Sequence[str], n_processes: int) -> int:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={n_processes}",
        "-m",
        "pipeline.train",
        *argv,
    ]
    print(f"train: DistributedDataParallel over {n_processes} processes (torchrun)", flush=True)
    return subprocess.run(command, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Train and write the model (rank 0 only under torchrun)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--train", type=Path, required=True, help="training split")
    parser.add_argument("--val", type=Path, required=True, help="validation split")
    parser.add_argument("--model", type=Path, required=True, help="fitted model to write")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as error:
        print(f"train: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    distributed = params.train.model == "torch" and params.train.torch.gpus > 1
    if distributed and "LOCAL_RANK" not in os.environ:
        return _relaunch_under_torchrun(argv, params.train.torch.gpus)
    try:
        model = train(read_table(args.train), read_table(args.val), params)
    except ValueError as error:
        print(f"train: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    finally:
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if os.environ.get("RANK", "0") == "0":
        with atomic_path(args.model) as tmp:
            joblib.dump(model, tmp)
        print(f"train: {params.train.model} model -> {args.model}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
