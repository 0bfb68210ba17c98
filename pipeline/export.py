"""Stage ``export``: ONNX model with a parity check, BentoML store entry and model card.

``python -m pipeline.export --model models/model.joblib --train data/split/train.parquet
--test data/split/test.parquet --metrics metrics.json --onnx models/model.onnx
--spec models/serving.json --card models/model_card.md``

1. Converts the trained pipeline, preprocessing included, to ONNX
   (:func:`pipeline.onnx_model.export_onnx`).
2. Parity: ONNX Runtime against the native model on every test row; a difference above
   ``export.parity_tolerance`` fails the stage and names the worst row.
3. Writes the serving spec (``models/serving.json``: BentoML tag, input schema, metrics,
   git sha, params and training-data digests) that the service reads, and the model card.
4. Saves the ONNX file into the local BentoML model store under that tag
   (:func:`register`; ``python -m pipeline.export --register-only`` does this step alone
   on a machine that got the files with ``dvc pull``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from pipeline.exit_codes import ExitCode
from pipeline.io import atomic_path, read_json, read_table, write_json
from pipeline.metrics import DIGITS
from pipeline.onnx_model import OnnxClassifier, export_onnx, feeds_from_frame
from pipeline.params import DEFAULT_PARAMS_PATH, Params, ParamsError, SchemaParams, load_params
from pipeline.validate import file_md5

ONNX_FILE = "model.onnx"
CARD_FILE = "model_card.md"


class ParityError(ValueError):
    """ONNX Runtime and the native model disagree beyond the tolerance."""


@dataclass(frozen=True)
class Parity:
    """Largest difference between ONNX Runtime and native probabilities."""

    max_abs_diff: float
    worst_row: int
    rows: int


def check_parity(
    onnx_probability: np.ndarray, native_probability: np.ndarray, tolerance: float
) -> Parity:
    """Compare probabilities row by row.

    Args:
        onnx_probability: From ONNX Runtime.
        native_probability: From the trained pipeline.
        tolerance: Largest accepted absolute difference.

    Returns:
        The largest difference and where it is.

    Raises:
        ParityError: Naming the worst row, when the difference exceeds the tolerance.
    """
    diff = np.abs(onnx_probability - native_probability)
    worst = int(np.argmax(diff))
    parity = Parity(float(diff[worst]), worst, len(diff))
    if parity.max_abs_diff > tolerance:
        raise ParityError(
            f"parity: ONNX and native probabilities differ by {parity.max_abs_diff:.3g} "
            f"(> export.parity_tolerance {tolerance:g}) at test row {worst}: "
            f"onnx={onnx_probability[worst]:.8f}, native={native_probability[worst]:.8f}"
        )
    return parity


def git_short_sha() -> str:
    """The short sha of HEAD (the commit the model was trained from); ``nogit`` outside git."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


# The params sections that shape the model (all but `gates`, which only judges it). The
# export stage lists exactly these under `params:` in dvc.yaml, as the spec records them.
MODEL_SECTIONS = ("data", "split", "train", "evaluate", "export")


def model_params(params: Params) -> dict[str, Any]:
    """The sections of params.yaml the model was built with."""
    return params.model_dump(mode="json", by_alias=True, include=set(MODEL_SECTIONS))


def params_digest(params: Params) -> str:
    """A short digest of :func:`model_params`, for the model card and the store metadata."""
    text = json.dumps(model_params(params), sort_keys=True)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8]


def subgroup_auc(
    test: pd.DataFrame, probability: np.ndarray, schema: SchemaParams
) -> dict[str, dict[str, float | None]]:
    """ROC AUC per value of each categorical feature (None where only one class occurs)."""
    from sklearn.metrics import roc_auc_score

    labels = test[schema.target].to_numpy()
    result: dict[str, dict[str, float | None]] = {}
    for column in schema.categorical_features:
        result[column] = {}
        for value in schema.columns[column].categories or ():
            mask = (test[column] == value).to_numpy()
            if len(set(labels[mask])) < 2:
                result[column][value] = None
                continue
            auc = roc_auc_score(labels[mask], probability[mask])
            result[column][value] = round(float(auc), DIGITS)
    return result


def model_card(spec: dict[str, Any]) -> str:
    """The model card (Mitchell et al., 2019), generated from the serving spec.

    Args:
        spec: The content of models/serving.json.

    Returns:
        Markdown.
    """
    metrics, schema = spec["metrics"], spec["schema"]
    rows = "\n".join(
        f"| {name} | {metrics['model'][name]:.4f} | {metrics['baseline'][name]:.4f} |"
        for name in metrics["model"]
    )
    groups = "\n".join(
        f"| {column} | {value} | {'n/a' if auc is None else f'{auc:.4f}'} |"
        for column, values in spec["subgroup_roc_auc"].items()
        for value, auc in values.items()
    )
    features = ", ".join(f"`{name}`" for name in spec["features"])
    return f"""# Model card: {spec['tag']}

Generated by `python -m pipeline.export` from `models/serving.json`; do not edit by hand.

## Model details
- **Name and version:** `{spec['tag']}`
  (git `{spec['git_sha']}`, params digest `{spec['params_digest']}`)
- **Family:** {spec['family']} — `{spec['estimator']}` after the shared preprocessing
  (`pipeline/features.py`: median imputation, scaling for non-tree models, one-hot categories)
- **Format:** ONNX (opset {spec['opset']}), preprocessing inside the graph; served by
  ONNX Runtime. Parity with the trained pipeline on {spec['parity']['rows']} test rows:
  max |difference| {spec['parity']['max_abs_diff']:.2g}.
- **Inputs:** {features}. **Output:** probability that `{schema['target']}` is 1.

## Intended use
- **Primary:** scoring the probability of default of a loan application, as a
  decision aid reviewed by a person, in the GitOps template's demo and tests.
- **Out of scope:** automated credit decisions without human review; populations or
  products absent from the training data (see data limits below).

## Metrics (test split, {metrics['n_test']} rows, threshold {metrics['threshold']})
| metric | model | baseline (training default rate for everyone) |
|---|---|---|
{rows}

ROC AUC is the primary metric (threshold-free; the classes are imbalanced, so accuracy
alone rewards predicting "no default"). The baseline shows what the model adds.

### By subgroup (ROC AUC)
| feature | value | ROC AUC |
|---|---|---|
{groups}

## Training data
- Training split: {spec['training_rows']} rows, md5 `{spec['training_data_md5']}`
  (the same digest as `data/split/train.parquet` in dvc.lock).
- Source: `{spec['data_source']}` — see docs/datasheet.md for the embedded synthetic data.

## Evaluation data
The held-out test split made by the `split` stage (`{spec['split_method']}`), never used for
fitting or model selection.

## Limits and ethical considerations
- The embedded data is synthetic: metrics say how the pipeline behaves, not how a real
  lender's model would.
- Features such as `age` and `region` can act as proxies for protected attributes; check
  subgroup metrics and the applicable regulation before any real use.
- Performance degrades under drift (covariate, prior or concept); the monitoring job
  compares production windows with this model's training data.
"""


def build_spec(
    params: Params,
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    probability: np.ndarray,
    parity: Parity,
    metrics: dict[str, Any],
    training_data_md5: str,
    onnx_md5: str,
) -> dict[str, Any]:
    """The serving spec: everything the service and the model card need to know."""
    schema = params.data.schema
    # Content-addressed: the same commit can only carry one model under one tag.
    version = f"{git_short_sha()}-{onnx_md5[:8]}"
    return {
        "tag": f"{params.export.model_name}:{version}",
        "model_name": params.export.model_name,
        "version": version,
        "git_sha": version.split("-")[0],
        "params_digest": params_digest(params),
        "family": params.train.model,
        "estimator": type(model.named_steps["classifier"]).__name__,
        "opset": 17,
        "features": schema.features,
        "numeric_features": schema.numeric_features,
        "categorical_features": schema.categorical_features,
        "schema": schema.model_dump(mode="json"),
        "threshold": params.evaluate.threshold,
        "metrics": metrics,
        "subgroup_roc_auc": subgroup_auc(test, probability, schema),
        "parity": {"max_abs_diff": parity.max_abs_diff, "rows": parity.rows},
        "training_rows": len(train),
        "training_data_md5": training_data_md5,
        "onnx_md5": onnx_md5,
        "data_source": params.data.source,
        "split_method": params.split.method,
        "params": model_params(params),
    }


def register(onnx_path: Path, spec_path: Path) -> str:
    """Save the ONNX model into the local BentoML model store (idempotent).

    Args:
        onnx_path: The exported model.
        spec_path: models/serving.json (its ``tag`` names the store entry).

    Returns:
        The tag.
    """
    import bentoml

    spec = read_json(spec_path)
    tag = str(spec["tag"])
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if existing.info.metadata.get("onnx_md5") == spec["onnx_md5"]:
            return tag
        bentoml.models.delete(tag)  # same tag, other bytes: a re-run of the same commit
    keys = ("git_sha", "params_digest", "onnx_md5", "family", "training_data_md5", "metrics")
    metadata = {key: spec[key] for key in keys}
    # BentoML metadata takes no None (unset bounds in the schema, unset seeds...): store
    # those documents as JSON text.
    metadata["schema_json"] = json.dumps(spec["schema"], sort_keys=True)
    metadata["params_json"] = json.dumps(spec["params"], sort_keys=True)
    labels = {"git_sha": spec["git_sha"], "family": spec["family"]}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as stored:
        Path(stored.path_of(ONNX_FILE)).write_bytes(onnx_path.read_bytes())
        Path(stored.path_of("serving.json")).write_bytes(spec_path.read_bytes())
        card = spec_path.parent / CARD_FILE
        if card.is_file():
            Path(stored.path_of(CARD_FILE)).write_bytes(card.read_bytes())
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    """Export, check parity, write spec and card, register in the BentoML store."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_PATH)
    parser.add_argument("--model", type=Path, help="fitted pipeline from the train stage")
    parser.add_argument("--train", type=Path, help="training split (row count and digest)")
    parser.add_argument("--test", type=Path, help="test split (parity, subgroup metrics)")
    parser.add_argument("--metrics", type=Path, help="metrics.json from evaluate")
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--spec", type=Path, required=True, help="serving spec JSON")
    parser.add_argument("--card", type=Path, help="model card to write")
    parser.add_argument(
        "--register-only",
        action="store_true",
        help="only save an existing --onnx/--spec pair into the BentoML store",
    )
    args = parser.parse_args(argv)
    if args.register_only:
        print(f"export: registered {register(args.onnx, args.spec)} in the BentoML store")
        return ExitCode.OK
    missing = [
        f"--{n}" for n in ("model", "train", "test", "metrics", "card") if not getattr(args, n)
    ]
    if missing:
        parser.error(f"{', '.join(missing)} required unless --register-only")
    try:
        params = load_params(args.params)
        schema = params.data.schema
        train, test = read_table(args.train), read_table(args.test)
        metrics = read_json(args.metrics)
        model = joblib.load(args.model)
        onnx_model = export_onnx(model, schema)
        onnx_bytes = onnx_model.SerializeToString()
        native = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
        onnx_probability = OnnxClassifier(onnx_bytes).predict_proba(feeds_from_frame(test, schema))
        parity = check_parity(onnx_probability, native, params.export.parity_tolerance)
    except (ParamsError, ValueError) as error:
        print(f"export: {error}", file=sys.stderr)
        return ExitCode.FOUND_PROBLEM
    with atomic_path(args.onnx) as tmp:
        tmp.write_bytes(onnx_bytes)
    spec = build_spec(
        params,
        model,
        train,
        test,
        native,
        parity,
        metrics,
        file_md5(args.train),
        hashlib.md5(onnx_bytes, usedforsecurity=False).hexdigest(),
    )
    write_json(spec, args.spec)
    with atomic_path(args.card) as tmp:
        tmp.write_text(model_card(spec), encoding="utf-8")
    tag = register(args.onnx, args.spec)
    print(
        f"export: {args.onnx} (parity {parity.max_abs_diff:.2g} over {parity.rows} rows), "
        f"BentoML model {tag}, card {args.card}"
    )
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
