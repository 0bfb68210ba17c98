"""Benchmark the DVC pipeline in a throw-away copy of the project.

``python -m scripts.dev.bench_pipeline [--repeats 7]`` (``make bench``) measures, in one run:

* the full pipeline (``dvc repro`` from scratch) on the default data of params.yaml;
* a no-op ``dvc repro`` right after it, next to ``dvc status`` (the baseline: the least
  work DVC can do to know nothing changed), alternating the two; the figure is the
  ratio of their medians (goal: at most 1.5).

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from scripts.dev.workspace import copy_project, tool_env

NOOP_RATIO_GOAL = 1.5


def timed(command: Sequence[str], cwd: Path) -> tuple[float, str]:
    """Run a command and return its wall time in seconds and its stdout.

    Raises:
        subprocess.CalledProcessError: When the command fails.
    """
    start = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=cwd, env=tool_env(), check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; exit 1 when the no-op ratio misses its goal."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.bench_pipeline", description=__doc__
    )
    parser.add_argument("--repeats", type=int, default=7, help="runs of each no-op command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitops-ml-bench-") as scratch:
        # The export stage registers the model: keep it out of the developer's store.
        os.environ["BENTOML_HOME"] = str(Path(scratch) / "bentoml")
        repo = copy_project(Path(scratch) / "repo")
        full, _ = timed(["dvc", "repro"], repo)
        repro_times: list[float] = []
        status_times: list[float] = []
        for _ in range(args.repeats):
            seconds, output = timed(["dvc", "repro"], repo)
            if "Running stage" in output:
                print(f"no-op repro re-ran a stage:\n{output}", file=sys.stderr)
                return 1
            repro_times.append(seconds)
            status_times.append(timed(["dvc", "status"], repo)[0])
    repro, status = statistics.median(repro_times), statistics.median(status_times)
    ratio = repro / status
    print(f"machine: {platform.machine()}, {platform.python_version()}, repeats={args.repeats}")
    print()
    print("| measurement | median (s) |")
    print("|---|---|")
    print(f"| full `dvc repro` from scratch (default params) | {full:.1f} |")
    print(f"| no-op `dvc repro` | {repro:.2f} |")
    print(f"| `dvc status` (baseline) | {status:.2f} |")
    print(f"| ratio no-op repro / status (goal <= {NOOP_RATIO_GOAL}) | {ratio:.2f} |")
    return 0 if ratio <= NOOP_RATIO_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
