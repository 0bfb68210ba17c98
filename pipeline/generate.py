"""Synthetic credit-risk data: the embedded demo dataset and drifted production windows.

The generative model (documented in docs/datasheet.md) draws applicant features, then a
default label from a logistic model with interactions and Gaussian noise on the logit,
so even the true model is far from 100% accurate. Three kinds of production drift can
be simulated, after the course's definitions:

* ``covariate``: P(X) changes, P(Y|X) does not (applicants suddenly aged 18-25);
* ``prior``: P(Y) changes, P(X|Y) does not (rows resampled by label to a higher default rate);
* ``concept``: P(Y|X) changes (different coefficients in the logistic model).

Rows are produced in fixed-size chunks, each from its own seeded generator, so memory
stays bounded for 10M rows (:func:`write_dataset` streams chunks to Parquet) and the
output depends only on ``(n_rows, seed, drift, ...)``.

Run as ``python -m pipeline.generate --rows 5000 --drift covariate --out window.parquet``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.exit_codes import ExitCode
from pipeline.io import atomic_path, write_table

Drift = Literal["none", "covariate", "prior", "concept"]
DRIFTS: tuple[str, ...] = get_args(Drift)

TARGET = "default"
EVENT_TIME = "event_time"
REGIONS = ("north", "south", "east", "west", "centre")
REGION_SHARES = (0.22, 0.20, 0.20, 0.18, 0.20)
PRODUCTS = ("personal", "auto", "mortgage", "credit_card")
PRODUCT_SHARES = (0.35, 0.25, 0.15, 0.25)
# Per product: median loan amount, mean and spread of the term in months.
_LOAN_MEDIAN = {
    "personal": 8_000.0,
    "auto": 18_000.0,
    "mortgage": 180_000.0,
    "credit_card": 3_000.0,
}
_TERM_MONTHS = {
    "personal": (36, 12),
    "auto": (48, 12),
    "mortgage": (240, 60),
    "credit_card": (24, 12),
}
NULLABLE_COLUMNS = ("income", "credit_score", "loan_amount")
CHUNK_ROWS = 500_000
PRIOR_SHIFT_DEFAULT_RATE = 0.30
COVARIATE_SHIFT_AGES = (18, 25)


@dataclass(frozen=True)
class Concept:
    """Coefficients of the logistic model that links features to default.

    The logit is ``intercept + age*a + age_squared*a**2 + credit_score*c + payment_ratio*p
    + late_payments*n + tenure*t + region[...] + product[...] + late_x_low_score*n*max(-c, 0)
    + mortgage_x_payment*[mortgage]*p + N(0, noise)`` with ``a = (age-40)/12``,
    ``c = (credit_score-660)/60``, ``p = 10*(yearly payment / income - 0.1)`` and
    ``t = tenure_months/120``.
    """

    intercept: float = -2.9
    age: float = -0.30
    age_squared: float = 0.15
    credit_score: float = -0.80
    payment_ratio: float = 0.30
    late_payments: float = 0.45
    tenure: float = -0.20
    late_x_low_score: float = 0.30
    mortgage_x_payment: float = -0.15
    noise: float = 0.80
    region: dict[str, float] = field(
        default_factory=lambda: {
            "north": 0.0,
            "south": 0.25,
            "east": -0.1,
            "west": 0.1,
            "centre": 0.0,
        }
    )
    product: dict[str, float] = field(
        default_factory=lambda: {"personal": 0.3, "auto": 0.0, "mortgage": -0.4, "credit_card": 0.5}
    )


BASE_CONCEPT = Concept()
# After the drift, late payments and the payment burden matter far more, the credit
# score much less, and regional/product risk is reshuffled.
DRIFTED_CONCEPT = replace(
    BASE_CONCEPT,
    intercept=-3.3,
    credit_score=-0.15,
    payment_ratio=0.9,
    late_payments=1.1,
    age=0.25,
    region={"north": 0.5, "south": -0.4, "east": 0.3, "west": -0.2, "centre": 0.0},
    product={"personal": -0.2, "auto": 0.6, "mortgage": 0.2, "credit_card": -0.3},
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return result


def _features(rng: np.random.Generator, n: int, drift: Drift) -> pd.DataFrame:
    if drift == "covariate":
        low, high = COVARIATE_SHIFT_AGES
        age = rng.integers(low, high + 1, size=n)
    else:
        age = np.clip(np.rint(rng.normal(40.0, 11.0, size=n)), 18, 80).astype(np.int64)
    centred_age = age - 40.0
    income = np.exp(rng.normal(10.5 + 0.012 * centred_age - 0.00035 * centred_age**2, 0.45, size=n))
    credit_score = np.clip(
        rng.normal(660.0 + 1.5 * centred_age + 25.0 * np.log(income / 36_000.0), 55.0, size=n),
        300.0,
        850.0,
    )
    product = rng.choice(np.array(PRODUCTS), size=n, p=PRODUCT_SHARES)
    region = rng.choice(np.array(REGIONS), size=n, p=REGION_SHARES)
    median = np.vectorize(_LOAN_MEDIAN.__getitem__)(product)
    loan_amount = np.exp(rng.normal(np.log(median) + 0.3 * np.log(income / 36_000.0), 0.35))
    term_mean = np.vectorize(lambda p: _TERM_MONTHS[p][0])(product)
    term_sd = np.vectorize(lambda p: _TERM_MONTHS[p][1])(product)
    tenure = np.clip(np.rint(rng.normal(term_mean, term_sd)), 3, 480).astype(np.int64)
    late_rate = 0.35 * np.exp(-0.6 * (credit_score - 660.0) / 60.0)
    n_late = rng.poisson(late_rate).astype(np.int64)
    return pd.DataFrame(
        {
            "age": age.astype(np.int64),
            "income": np.round(income, 2),
            "credit_score": np.round(credit_score, 1),
            "loan_amount": np.round(loan_amount, 2),
            "tenure_months": tenure,
            "n_late_payments": n_late,
            "region": region,
            "product_type": product,
        }
    )


def default_probability(
    frame: pd.DataFrame, concept: Concept = BASE_CONCEPT, noise: np.ndarray | None = None
) -> np.ndarray:
    """Probability of default under a concept, from the true (not yet masked) features.

    Args:
        frame: Feature columns as produced by the generator, without missing values.
        concept: The coefficients.
        noise: Standard-normal draws added to the logit (scaled by ``concept.noise``);
            ``None`` gives the noise-free probability.

    Returns:
        One probability per row.
    """
    a = (frame["age"].to_numpy(float) - 40.0) / 12.0
    c = (frame["credit_score"].to_numpy(float) - 660.0) / 60.0
    yearly_payment = (
        12.0 * frame["loan_amount"].to_numpy(float) / frame["tenure_months"].to_numpy(float)
    )
    p = 10.0 * (yearly_payment / frame["income"].to_numpy(float) - 0.1)
    p = np.clip(p, -1.0, 10.0)
    n = frame["n_late_payments"].to_numpy(float)
    t = frame["tenure_months"].to_numpy(float) / 120.0
    is_mortgage = (frame["product_type"] == "mortgage").to_numpy(float)
    z = (
        concept.intercept
        + concept.age * a
        + concept.age_squared * a**2
        + concept.credit_score * c
        + concept.payment_ratio * p
        + concept.late_payments * n
        + concept.tenure * t
        + frame["region"].map(concept.region).to_numpy(float)
        + frame["product_type"].map(concept.product).to_numpy(float)
        + concept.late_x_low_score * n * np.maximum(-c, 0.0)
        + concept.mortgage_x_payment * is_mortgage * p
    )
    if noise is not None:
        z = z + concept.noise * noise
    return _sigmoid(z)


def _labelled_chunk(rng: np.random.Generator, n: int, drift: Drift) -> pd.DataFrame:
    frame = _features(rng, n, drift)
    concept = DRIFTED_CONCEPT if drift == "concept" else BASE_CONCEPT
    probability = default_probability(frame, concept, noise=rng.standard_normal(n))
    frame[TARGET] = (rng.random(n) < probability).astype(np.int64)
    return frame


def _resample_prior(
    rng: np.random.Generator, n: int, default_rate: float
) -> pd.DataFrame:  # P(X|Y) is kept: rows are drawn per label from the base model.
    n_default = round(n * default_rate)
    parts: dict[int, list[pd.DataFrame]] = {0: [], 1: []}
    wanted = {0: n - n_default, 1: n_default}
    while any(sum(len(p) for p in parts[label]) < wanted[label] for label in (0, 1)):
        pool = _labelled_chunk(rng, max(n, 1_000), "none")
        for label in (0, 1):
            parts[label].append(pool[pool[TARGET] == label])
    chosen = pd.concat(
        [pd.concat(parts[label]).iloc[: wanted[label]] for label in (0, 1)], ignore_index=True
    )
    return chosen.iloc[rng.permutation(len(chosen))].reset_index(drop=True)


def _mask_missing(rng: np.random.Generator, frame: pd.DataFrame, rate: float) -> None:
    for column in NULLABLE_COLUMNS:
        frame.loc[rng.random(len(frame)) < rate, column] = np.nan


@dataclass(frozen=True)
class Window:
    """What to generate besides size and seed.

    Attributes:
        drift: Which production drift to simulate ("none" for the training distribution).
        missing_rate: Share of values blanked in each of :data:`NULLABLE_COLUMNS`.
        start: First day of ``event_time``.
        days: Length of the period ``event_time`` covers, spread evenly over the rows.
        prior_default_rate: Default rate of a ``prior`` drift window.
    """

    drift: Drift = "none"
    missing_rate: float = 0.02
    start: dt.date = dt.date(2025, 1, 1)
    days: int = 365
    prior_default_rate: float = PRIOR_SHIFT_DEFAULT_RATE

    def __post_init__(self) -> None:
        if self.drift not in DRIFTS:
            raise ValueError(f"drift: expected one of {', '.join(DRIFTS)}, got {self.drift!r}")
        if not 0 <= self.missing_rate < 1:
            raise ValueError(f"missing_rate: expected 0 <= rate < 1, got {self.missing_rate}")
        if self.days <= 0:
            raise ValueError(f"days: expected a positive number, got {self.days}")
        if not 0 < self.prior_default_rate < 1:
            raise ValueError(
                f"prior_default_rate: expected 0 < rate < 1, got {self.prior_default_rate}"
            )


def iter_chunks(n_rows: int, seed: int, window: Window = Window()) -> Iterator[pd.DataFrame]:
    """Yield the dataset in chunks of at most :data:`CHUNK_ROWS` rows, oldest first.

    Args:
        n_rows: Total number of rows.
        seed: Seed; the same arguments always give the same rows.
        window: Drift, missing values and time span.

    Yields:
        DataFrames with ``event_time``, the feature columns and the ``default`` target.
    """
    if n_rows <= 0:
        raise ValueError(f"n_rows: expected a positive number, got {n_rows}")
    drift = window.drift
    origin = pd.Timestamp(window.start)
    seconds_per_row = window.days * 86_400 / n_rows
    for index, first in enumerate(range(0, n_rows, CHUNK_ROWS)):
        size = min(CHUNK_ROWS, n_rows - first)
        rng = np.random.default_rng([seed, index])
        if drift == "prior":
            frame = _resample_prior(rng, size, window.prior_default_rate)
        else:
            frame = _labelled_chunk(rng, size, drift)
        _mask_missing(rng, frame, window.missing_rate)
        offsets = (np.arange(first, first + size) + rng.random(size)) * seconds_per_row
        frame.insert(0, EVENT_TIME, origin + pd.to_timedelta(np.floor(offsets), unit="s"))
        yield frame


def generate(n_rows: int, seed: int, window: Window = Window()) -> pd.DataFrame:
    """Return the whole dataset as one DataFrame.

    Args:
        n_rows: Total number of rows.
        seed: Seed.
        window: Drift, missing values and time span.

    Returns:
        The dataset, oldest row first.
    """
    chunks = list(iter_chunks(n_rows, seed, window))
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def write_dataset(path: Path, n_rows: int, seed: int, window: Window = Window()) -> None:
    """Write the dataset to CSV or Parquet, streaming chunks so memory stays bounded.

    Args:
        path: Output file; the suffix picks the format. Written atomically.
        n_rows: Total number of rows.
        seed: Seed.
        window: Drift, missing values and time span.
    """
    chunks = iter_chunks(n_rows, seed, window)
    if path.suffix.lower() != ".parquet":
        write_table(pd.concat(chunks, ignore_index=True), path)
        return
    with atomic_path(path) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a dataset or production window to a file."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.generate", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv file")
    parser.add_argument("--rows", type=int, default=5_000, help="number of rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", choices=DRIFTS, default="none")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=7, help="period the window covers")
    parser.add_argument("--missing-rate", type=float, default=0.02)
    parser.add_argument(
        "--default-rate",
        type=float,
        default=PRIOR_SHIFT_DEFAULT_RATE,
        help="default rate of a prior-shift window",
    )
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in {".csv", ".parquet"}:
        parser.error(f"--out: expected a .csv or .parquet file, got '{args.out}'")
    try:
        window = Window(
            drift=args.drift,
            missing_rate=args.missing_rate,
            start=args.start,
            days=args.days,
            prior_default_rate=args.default_rate,
        )
    except ValueError as error:
        parser.error(str(error))
    if args.rows <= 0:
        parser.error(f"--rows: expected a positive number, got {args.rows}")
    write_dataset(args.out, args.rows, args.seed, window)
    print(f"wrote {args.rows} rows ({args.drift} drift) to {args.out}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
