"""Stage ``evaluate``: test-set metrics with a baseline, DVC plot data and PNG figures.

``python -m pipeline.evaluate --model models/model.joblib --train data/split/train.parquet
--test data/split/test.parquet --metrics metrics.json --plots-dir reports/plots
--figures-dir reports/figures --predictions reports/predictions.parquet``

metrics.json holds ``model`` and ``baseline`` scores (the baseline predicts the training
default rate for everyone) and their difference under ``lift``, so a report shows what
the model adds. The plot CSVs are declared under ``plots:`` in dvc.yaml; the PNGs of the
same curves are for PR comments, which cannot render DVC's Vega plots.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from pipeline.exit_codes import ExitCode
from pipeline.features import target_array
from pipeline.io import atomic_path, read_table, write_json, write_table
from pipeline.metrics import DIGITS, Scores, baseline_probability, pr_points, roc_points, score
from pipeline.params import DEFAULT_PARAMS_PATH, ParamsError, load_params


def metrics_document(
    model: Scores, baseline: Scores, n_test: int, threshold: float
) -> dict[str, Any]:
    """The content of metrics.json.

    Args:
        model: Scores of the trained model.
        baseline: Scores of the trivial baseline.
        n_test: Number of test rows.
        threshold: Decision threshold used.

    Returns:
        A JSON-serialisable dict.
    """
    model_scores, baseline_scores = model.to_json(), baseline.to_json()
    lift = {k: round(model_scores[k] - baseline_scores[k], DIGITS) for k in model_scores}
    return {
        "model": model_scores,
        "baseline": baseline_scores,
        "lift": lift,
        "n_test": n_test,
        "threshold": threshold,
    }


def _save_figures(
    figures_dir: Path, labels: np.ndarray, probability: np.ndarray, threshold: float
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on CI runners
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    figures_dir.mkdir(parents=True, exist_ok=True)
    predicted = (probability >= threshold).astype(np.int64)
    drawings: dict[str, Callable[[Any], object]] = {
        "confusion_matrix.png": lambda ax: ConfusionMatrixDisplay.from_predictions(
            labels, predicted, ax=ax, colorbar=False
        ),
        "roc.png": lambda ax: RocCurveDisplay.from_predictions(labels, probability, ax=ax),
        "precision_recall.png": lambda ax: PrecisionRecallDisplay.from_predictions(
            labels, probability, ax=ax
        ),
    }
    for name, draw in drawings.items():
        figure, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
        draw(ax)
        ax.set_title(name.removesuffix(".png").replace("_", " "))
        figure.tight_layout()
        with atomic_path(figures_dir / name) as tmp:
            # No timestamp or software version in the file: same figure, same bytes.
            figure.savefig(tmp, format="png", metadata={"Software": None})
        plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Score the model on the test split and write metrics, plots and predictions."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="training split (baseline)")
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="metrics.json to write")
    parser.add_argument("--plots-dir", type=Path, required=True, help="DVC plot CSVs")
    parser.add_argument("--figures-dir", type=Path, required=True, help="PNG figures")
    parser.add_argument("--predictions", type=Path, required=True, help="test predictions")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        schema, threshold = params.data.schema, params.evaluate.threshold
        test = read_table(args.test)
        train_labels = read_table(args.train)[schema.target].to_numpy(dtype=np.int64)
    except (ParamsError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    model = joblib.load(args.model)
    labels = target_array(test, schema)
    # The fitted model knows its input columns; no need for the schema's feature list.
    probability = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    model_scores = score(labels, probability, threshold)
    baseline_scores = score(labels, baseline_probability(train_labels, len(labels)), threshold)
    write_json(
        metrics_document(model_scores, baseline_scores, len(labels), threshold), args.metrics
    )

    predicted = (probability >= threshold).astype(np.int64)
    write_table(
        pd.DataFrame({"actual": labels, "predicted": predicted}),
        args.plots_dir / "confusion_matrix.csv",
    )
    write_table(roc_points(labels, probability), args.plots_dir / "roc.csv")
    write_table(pr_points(labels, probability), args.plots_dir / "precision_recall.csv")
    write_table(
        pd.DataFrame(
            {
                "row": np.arange(len(labels)),
                "label": labels,
                "probability": probability,
                "predicted": predicted,
            }
        ),
        args.predictions,
    )
    _save_figures(args.figures_dir, labels, probability, threshold)

    print(f"evaluate ({len(labels)} test rows, threshold {threshold}):")
    print(f"  {'metric':<10} {'model':>9} {'baseline':>9}")
    for name, value in model_scores.to_json().items():
        print(f"  {name:<10} {value:>9.4f} {baseline_scores.to_json()[name]:>9.4f}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
