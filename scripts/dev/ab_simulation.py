"""How often the hourly A/B decision is wrong: ``python -m scripts.dev.ab_simulation``.

Simulates many experiments on synthetic hourly counts — no servers: each hour, each arm
receives its share of labelled predictions, correct with the arm's true accuracy. The
decision rule of :func:`scripts.promote.decide` (minimum samples per arm, then the mSPRT,
rollback at the maximum duration) is evaluated **at every simulated hour**, as the hourly
``promote.yml`` does. Reports:

* A/A (identical models): the false-promotion rate, to compare with the significance level;
  and, for contrast, the same data judged by a fixed-horizon two-proportion z-test
  evaluated every hour ("peeking"), which the sequential test replaces;
* power: how often, and after how many hours, a challenger with a true accuracy lift is
  promoted.

The figures in docs/ab-testing.md come from this command.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scripts.cd.promotion import msprt_log_lr
from scripts.cd.state import Experiment


@dataclass(frozen=True)
class Outcomes:
    """Shares of experiments ending each way, and the median hours to a verdict."""

    promote: float
    rollback: float
    median_hours_to_promote: float | None
    peeking_promote: float


def simulate(
    experiment: Experiment,
    accuracy: float,
    lift: float,
    labelled_per_hour: int,
    n_experiments: int,
    seed: int,
) -> Outcomes:
    """Run ``n_experiments`` experiments of ``max_duration_hours`` hourly looks each."""
    rng = np.random.default_rng(seed)
    hours = int(experiment.max_duration_hours)
    share = experiment.challenger_weight / 100
    n_challenger = max(1, round(labelled_per_hour * share))
    n_champion = max(1, labelled_per_hour - n_challenger)
    shape = (n_experiments, hours)
    correct_a = rng.binomial(n_champion, accuracy, shape).cumsum(axis=1)
    correct_b = rng.binomial(n_challenger, min(accuracy + lift, 1.0), shape).cumsum(axis=1)
    n_a = n_champion * np.arange(1, hours + 1)
    n_b = n_challenger * np.arange(1, hours + 1)
    log_lr, difference = msprt_log_lr(correct_a, n_a, correct_b, n_b, experiment.mixture_sd)
    enough = np.minimum(n_a, n_b) >= experiment.min_samples_per_arm
    crossed = enough & (log_lr >= math.log(1 / experiment.significance_level))
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    decided = first >= 0
    rows = np.arange(n_experiments)
    direction = difference[rows, np.maximum(first, 0)]
    promoted = decided & (direction > 0)
    rolled_back = ~promoted  # significant and worse, or undecided at the end
    # The fixed-horizon z-test, peeked at every hour (what mSPRT protects against).
    pooled = (correct_a + correct_b) / (n_a + n_b)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n_a + 1 / n_b), 1e-12))
    z = difference / se
    peek = enough & (z > stats.norm.ppf(1 - experiment.significance_level / 2))
    return Outcomes(
        promote=float(promoted.mean()),
        rollback=float(rolled_back.mean()),
        median_hours_to_promote=float(np.median(first[promoted] + 1)) if promoted.any() else None,
        peeking_promote=float(peek.any(axis=1).mean()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the A/A and power tables."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.ab_simulation", description=__doc__
    )
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--accuracy", type=float, default=0.86)
    parser.add_argument("--labelled-per-hour", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    experiment = Experiment()  # the defaults of bentos/deployments/production.yaml
    print(
        f"{args.experiments} experiments, {int(experiment.max_duration_hours)} hourly looks, "
        f"{args.labelled_per_hour} labelled predictions/hour, challenger share "
        f"{experiment.challenger_weight}%, accuracy {args.accuracy}, "
        f"alpha {experiment.significance_level}, min {experiment.min_samples_per_arm}/arm"
    )
    columns = ("true lift", "promoted (mSPRT)", "median hours to promote", "z-test peeked hourly")
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|")
    for lift in (0.0, 0.01, 0.02, 0.03, -0.02):
        outcome = simulate(
            experiment, args.accuracy, lift, args.labelled_per_hour, args.experiments, args.seed
        )
        hours = (
            "—"
            if outcome.median_hours_to_promote is None
            else f"{outcome.median_hours_to_promote:.0f}"
        )
        print(f"| {lift:+.2f} | {outcome.promote:.3f} | {hours} | {outcome.peeking_promote:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
