"""How often the paired regression gate fails a model that is no worse: ``make bench-gates``.

``python -m scripts.dev.gate_simulation [--models 16]`` trains ``--models`` models of the
same configuration that differ only by their training seed (stochastic boosting: the noise
of a retrain), scores them on the same test rows of the demo data, and judges every pair
(reference, candidate) with the gate of params.yaml (:mod:`scripts.ci.comparison`). It
prints the false-failure rate of the paired gate next to that of the old rule (a drop of
the point estimate beyond the tolerance, no interval), and the gate's power against a
genuinely weaker model (3 shallow trees). docs/gates.md records the figures.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence

import numpy as np

from pipeline.exit_codes import ExitCode
from pipeline.features import target_array
from pipeline.generate import generate
from pipeline.params import DEFAULT_PARAMS_PATH, load_params
from pipeline.schema import coerce_frame
from pipeline.split import split_frame
from pipeline.train import train
from scripts.ci.comparison import LOWER_IS_BETTER, compare, metric_function
from scripts.dev.workspace import set_dotted


def main(argv: Sequence[str] | None = None) -> int:
    """Train, pair, judge; print the rates."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.gate_simulation", description=__doc__
    )
    parser.add_argument("--models", type=int, default=16, help="equal models (pairs: n(n-1))")
    parser.add_argument("--rows", type=int, default=20_000, help="demo data size")
    parser.add_argument("--subsample", type=float, default=0.7)
    args = parser.parse_args(argv)
    base = load_params(DEFAULT_PARAMS_PATH)
    raw = base.model_dump(mode="json", by_alias=True)
    schema = base.data.schema
    frame = coerce_frame(generate(args.rows, seed=123), schema)
    parts = split_frame(frame, base.split, schema)
    labels = target_array(parts.test, schema)
    started = time.perf_counter()

    def scored(**overrides: object) -> np.ndarray:
        edited = {**raw}
        for key, value in overrides.items():
            set_dotted(edited, key, value)
        params = type(base).model_validate(edited)
        model = train(parts.train, parts.val, params)
        return np.asarray(model.predict_proba(parts.test[list(model.feature_names_in_)])[:, 1])

    models = [
        scored(**{"train.seed": seed, "train.sklearn.subsample": args.subsample})
        for seed in range(args.models)
    ]
    weak = scored(**{"train.sklearn.n_estimators": 3, "train.sklearn.max_depth": 1})
    cfg, threshold = base.gates.regression, base.evaluate.threshold
    print(
        f"{args.models} equal models ({args.rows} rows, {len(labels)} test rows, subsample "
        f"{args.subsample}) trained in {time.perf_counter() - started:.0f} s"
    )
    print("| metric | pairs | paired gate fails | old rule fails | weak model caught |")
    print("|---|---|---|---|---|")
    for metric, tolerance in sorted(cfg.tolerances.items()):
        score = metric_function(metric, threshold)
        sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
        paired = old = pairs = 0
        for reference, candidate in itertools.permutations(models, 2):
            pairs += 1
            verdict = compare(labels, reference, candidate, metric, tolerance, cfg, threshold)
            paired += not verdict.passed
            drop = sign * float(score(labels, candidate) - score(labels, reference))
            old += drop > tolerance
        caught = sum(
            not compare(labels, reference, weak, metric, tolerance, cfg, threshold).passed
            for reference in models
        )
        print(
            f"| {metric} | {pairs} | {paired} ({paired / pairs:.1%}) | {old} ({old / pairs:.1%}) "
            f"| {caught}/{len(models)} |"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
