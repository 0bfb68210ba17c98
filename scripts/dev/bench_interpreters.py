"""Benchmark a variant's interpreter: a new Bento's first build against the cached one.

``python -m scripts.dev.bench_interpreters [--repeats 5]`` (``make bench-interpreters``), in
one run, for the Bento ``bentofile.yaml`` describes (its ``python.packages`` as BentoML
writes them to ``env/python/requirements.txt``, and the serving closure it carries,
``requirements/serving.txt``):

1. cold: a run root with no interpreter, so :func:`scripts.cd.interpreters.for_bento`
   builds one (``uv venv`` + ``uv pip install``, from uv's cache as ``make install`` left it:
   what a deploy host pays the first time a Bento with new requirements starts);
2. cached: the same call again (what every later start, restart or rollback pays).

Prints the medians, their ratio and the interpreter's size on disk, as a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import yaml

from scripts.cd import interpreters
from scripts.dev.workspace import PROJECT_ROOT

TAG = "credit_risk:bench"


def timed(call: Callable[[], object]) -> float:
    """Wall time of ``call()`` in seconds."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bento_like(store: Path) -> None:
    """A store holding a Bento's requirement files for this checkout's bentofile."""
    spec = yaml.safe_load((PROJECT_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
    directory = interpreters.bento_directory(store, TAG)
    (directory / "env" / "python").mkdir(parents=True)
    packages = "\n".join(spec["python"]["packages"]) + "\n"
    (directory / "env" / "python" / "requirements.txt").write_text(packages, encoding="utf-8")
    (directory / "src" / "requirements").mkdir(parents=True)
    shutil.copy(
        PROJECT_ROOT / "requirements" / "serving.txt",
        directory / "src" / "requirements" / "serving.txt",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.bench_interpreters")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cold, cached, size = [], [], ""
    with tempfile.TemporaryDirectory(prefix="bench-interpreters-") as scratch:
        store = Path(scratch) / "store"
        bento_like(store)
        for repeat in range(args.repeats):
            build = partial(interpreters.for_bento, Path(scratch) / f"run-{repeat}", store, TAG)
            cold.append(timed(build))
            cached.append(timed(build))
        du = ["du", "-sh", str(Path(scratch) / "run-0" / "interpreters")]
        size = subprocess.run(du, capture_output=True, text=True, check=True).stdout.split()[0]
    first, again = statistics.median(cold), statistics.median(cached)
    print(f"{platform.node()}: {args.repeats} repeats, medians")
    print("| interpreter of the Bento | median | ratio |")
    print("|---|---|---|")
    print(
        f"| first start of a new requirement set (build from uv's cache) | {first:.3f} s | "
        f"{first / again:.0f}x |"
    )
    print(f"| any later start (cached by digest) | {again * 1000:.2f} ms | 1x |")
    print(f"\nSize on disk: {size} (uv hard-links from its cache where the filesystem allows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
