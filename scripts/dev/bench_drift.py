"""Drift job benchmark: ``python -m scripts.dev.bench_drift`` (``make bench-drift``).

Writes prepared production windows of 100k, 1M and 10M rows x 20 columns as Parquet (the 8
features with a covariate drift, ``event_time``, the target for 30 % of the rows, the
logged ``probability`` and ``prediction``, and the log's own columns: ids, variant, model
version, timestamp, user, latency), then runs the drift job on each in a fresh process
(``python -m monitoring.drift --current WINDOW``), ``--repeats`` times, measuring wall time
and peak RSS (the child's ``ru_maxrss`` from ``wait4``). The baseline, in the same run, is
how the job read a window before: the whole table into pandas, then sampled
(``--baseline-max-rows``, default 1M: the largest window it is run on).

Prints a Markdown table of medians, the ratios between sizes and against the baseline, and
the goal (10M rows in at most 60 s and 2 GB). Run from the project root after ``make repro``
(the job's reference: the training split, the test predictions, metrics.json).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SIZES = (100_000, 1_000_000, 10_000_000)
LABELLED_SHARE = 0.3
GOAL_SECONDS, GOAL_MB = 60.0, 2048.0
# The baseline: the job as it read a prepared window before, whole, then sampled.
BASELINE = """
import sys
import pandas as pd
import monitoring.drift as drift

def read_whole(path, schema, settings, labelled_out):
    return drift.Window(pd.read_parquet(path), None, None)

drift.sample_parquet = read_whole
sys.exit(drift.main(sys.argv[1:]))
"""


def write_window(path: Path, rows: int, seed: int) -> None:
    """``rows`` rows x 20 columns of drifted, partly labelled traffic, written in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.generate import Window, iter_chunks

    rng = np.random.default_rng(seed)
    writer = None
    written = 0
    for chunk in iter_chunks(rows, seed, Window(drift="covariate")):
        n = len(chunk)
        probability = rng.beta(2.0, 5.0, size=n)
        chunk["default"] = chunk["default"].astype("float64").where(rng.random(n) < LABELLED_SHARE)
        chunk["probability"] = probability.astype("float32")
        chunk["prediction"] = (probability >= 0.5).astype("int64")
        chunk["prediction_id"] = rng.integers(0, 2**62, size=n)
        chunk["request_id"] = rng.integers(0, 2**62, size=n)
        chunk["trace_id"] = rng.integers(0, 2**62, size=n)
        chunk["variant"] = np.where(rng.random(n) < 0.1, "challenger", "champion")
        chunk["model_version"] = "4ad3e70595fc"
        chunk["timestamp"] = chunk["event_time"]
        chunk["user_id"] = rng.integers(0, 100_000, size=n)
        chunk["latency_ms"] = rng.gamma(2.0, 1.0, size=n)
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        written += n
    if writer is not None:
        writer.close()
    assert written == rows


@dataclass(frozen=True)
class Measure:
    """One run of the job."""

    seconds: float
    peak_mb: float
    exit_code: int


def measure(command: Sequence[str], out_dir: Path) -> Measure:
    """Run the job once in a fresh process; wall time and the child's peak RSS.

    Raises:
        RuntimeError: When it could not run or wrote no summary (a crash exits 1 too).
    """
    (out_dir / "summary.json").unlink(missing_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--out-dir", str(out_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    if code not in (0, 1) or not (out_dir / "summary.json").is_file():
        error = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"{' '.join(command)} exited {code}: {error[-2000:]}")
    if process.stderr:
        process.stderr.close()
    return Measure(seconds, usage.ru_maxrss / 1024, code)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the windows, run the job and the baseline on them, print the table."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.bench_drift", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-max-rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    results: dict[tuple[str, int], list[Measure]] = {}
    with tempfile.TemporaryDirectory(prefix="gitops-ml-bench-drift-") as scratch_dir:
        scratch = Path(scratch_dir)
        for rows in args.sizes:
            window = scratch / f"window-{rows}.parquet"
            started = time.perf_counter()
            write_window(window, rows, seed=rows % 1000)
            size_mb = window.stat().st_size / 2**20
            print(
                f"bench_drift: {rows:,} rows written ({size_mb:.0f} MB Parquet) in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            job = [sys.executable, "-m", "monitoring.drift", "--current", str(window)]
            baseline = [sys.executable, "-c", BASELINE, "--current", str(window)]
            for repeat in range(args.repeats):
                runs = [("job", job)]
                if rows <= args.baseline_max_rows:
                    runs.append(("baseline", baseline))
                if repeat % 2:
                    runs.reverse()
                for name, command in runs:
                    run = measure(command, scratch / f"out-{name}")
                    results.setdefault((name, rows), []).append(run)
            window.unlink()
    print_table(results, args)
    return 0


def print_table(results: dict[tuple[str, int], list[Measure]], args: argparse.Namespace) -> None:
    """Markdown table of medians, then the ratios and the goal."""
    print(
        f"{args.repeats} runs per point, medians; {platform.machine()}, "
        f"{os.cpu_count()} CPUs; prepared Parquet windows x 20 columns"
    )
    print()
    print("| reader | rows | median s | median peak RSS MB | runs (s) |")
    print("|---|---|---|---|---|")
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    for (name, rows), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        seconds = statistics.median(r.seconds for r in runs)
        peak = statistics.median(r.peak_mb for r in runs)
        medians[(name, rows)] = (seconds, peak)
        label = "sampled while read" if name == "job" else "baseline: read whole"
        times = ", ".join(f"{r.seconds:.1f}" for r in runs)
        print(f"| {label} | {rows:,} | {seconds:.1f} | {peak:.0f} | {times} |")
    print()
    sizes = sorted({rows for _, rows in results})
    for small, large in itertools.pairwise(sizes):
        (t1, m1), (t2, m2) = medians[("job", small)], medians[("job", large)]
        print(
            f"job {large:,} / {small:,} rows: time x{t2 / t1:.2f}, peak RSS x{m2 / m1:.2f} "
            f"(rows x{large / small:.0f})"
        )
    for rows in sizes:
        if ("baseline", rows) in medians:
            (t, m), (bt, bm) = medians[("job", rows)], medians[("baseline", rows)]
            print(f"{rows:,} rows: job/baseline time x{t / bt:.2f}, peak RSS x{m / bm:.2f}")
    largest = max(sizes)
    seconds, peak = medians[("job", largest)]
    met = seconds <= GOAL_SECONDS and peak <= GOAL_MB
    print(
        f"goal: {largest:,} rows in <= {GOAL_SECONDS:.0f} s and <= {GOAL_MB:.0f} MB -> "
        f"{seconds:.1f} s, {peak:.0f} MB: {'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    sys.exit(main())
