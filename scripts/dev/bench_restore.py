"""Benchmark restoring the pipeline on a fresh clone from the shared storage (S3).

``python -m scripts.dev.bench_restore [--repeats 3]`` (``make bench-restore``), in one run:

1. a copy of the project whose DVC remote is a bucket on a real S3 endpoint (moto's server
   on loopback, :mod:`scripts.dev.s3`) trains once (``make ci-repro``: outputs and run-cache
   pushed) and commits its ``dvc.lock``;
2. per repeat, two fresh ``git clone`` s of it: one runs ``make repro`` (pull from the bucket,
   reproduce nothing), the baseline runs ``dvc repro`` with no remote at all (retrains
   every stage: what a runner without shared storage does).

Prints the medians, their ratio and whether any stage ran in the restore, as a Markdown
table for docs/benchmarks.md; exit 1 if a restore ran a stage.
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
from collections.abc import Mapping, Sequence
from pathlib import Path

from scripts.dev.s3 import s3_server
from scripts.dev.workspace import copy_project, tool_env


def timed(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, str]:
    """Wall time of a command and its output.

    Raises:
        subprocess.CalledProcessError: When it fails.
    """
    start = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=cwd, env=dict(env), check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, result.stdout + result.stderr


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.bench_restore", description=__doc__
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitops-ml-restore-") as scratch, s3_server() as s3:
        root = Path(scratch)
        env = {
            **tool_env(),
            **s3.env(),
            "VENV": sys.prefix,
            "DVC_NO_ANALYTICS": "1",
            "BENTOML_HOME": str(root / "bentoml"),
        }
        os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
        trained = copy_project(root / "trained")
        s3.configure_dvc(trained)
        timed(["make", "release-repro"], trained, env)
        timed(["git", "add", "-A"], trained, env)
        timed(["git", "commit", "-q", "-m", "trained"], trained, env)
        restores: list[float] = []
        retrains: list[float] = []
        ran_stage = False
        for repeat in range(args.repeats):
            for kind in ("restore", "retrain"):
                clone = root / f"{kind}-{repeat}"
                subprocess.run(["git", "clone", "-q", str(trained), str(clone)], check=True)
                if kind == "restore":
                    seconds, output = timed(["make", "repro"], clone, env)
                    ran_stage |= "Running stage" in output
                    restores.append(seconds)
                else:
                    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
                    seconds, _ = timed(["dvc", "repro", "--force"], clone, bare)
                    retrains.append(seconds)
    restore, retrain = statistics.median(restores), statistics.median(retrains)
    print(
        f"Fresh clone, default data ({platform.machine()}, {os.cpu_count()} CPUs), "
        f"{args.repeats} repeats each, medians:\n"
    )
    print("| command | median (s) | runs (s) |")
    print("|---|---|---|")
    print(
        f"| `make repro` from the S3 remote (restore) | {restore:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in restores)} |"
    )
    print(
        f"| `dvc repro --force`, no remote (retrain, baseline) | {retrain:.1f} | "
        f"{', '.join(f'{t:.1f}' for t in retrains)} |"
    )
    print(f"\nrestore / retrain: {restore / retrain:.2f}; a stage ran in a restore: {ran_stage}")
    return 1 if ran_stage else 0


if __name__ == "__main__":
    sys.exit(main())
