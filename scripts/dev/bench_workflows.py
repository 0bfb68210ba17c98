"""Benchmark the PR workflow: scenario (a) of tests/workflows under act vs its steps run directly.

``python -m scripts.dev.bench_workflows`` builds two identical sandboxes (scripts/dev/harness): main
trained with a weak model, a PR that restores the default params. In one, ``train.yml``
runs under act for the first push, ``make sync-lock`` follows, then the second push; in the
other (the baseline), the train job's own commands run directly in a clone of the PR:
``make ci-repro``, ``make gates``, ``make report`` and the comment. The difference is what
act and the job structure cost on top of the work itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scripts.dev.harness.github.tokens import APP_TOKEN
from scripts.dev.harness.runs import STANDINS
from scripts.dev.harness.sandbox import Sandbox, create_sandbox

WEAK = {"train.sklearn.n_estimators": 20, "train.sklearn.max_depth": 2}
DEFAULT = {"train.sklearn.n_estimators": 150, "train.sklearn.max_depth": 3}


def prepare(root: Path) -> Sandbox:
    """A sandbox whose main has the weak model, checked out on the PR branch."""
    sandbox = create_sandbox(root)
    # As scenario (a): the comment job would stop in setup-cml (defect 8, issue 12).
    sandbox.relax("setup-cml-canvas", "as tests/workflows scenario (a): defect 8, issue 12")
    sandbox.set_params(WEAK)
    sandbox.commit_all("weak model")
    sandbox.baseline()
    sandbox.git("checkout", "-q", "-b", "improve")
    sandbox.set_params(DEFAULT)
    sandbox.commit_all("default model")
    sandbox.push("improve")
    return sandbox


def timed(action: Callable[[], object]) -> float:
    """Seconds taken by a callable."""
    started = time.monotonic()
    action()
    return time.monotonic() - started


def with_act(root: Path) -> dict[str, float]:
    """First push, sync-lock, second push, all under act."""
    sandbox = prepare(root)
    times = {}
    first = sandbox.act("pull_request", "train.yml", number=1)
    times["act: first push (train + comment jobs)"] = first.seconds
    times["make sync-lock"] = timed(lambda: sandbox.make("sync-lock"))
    sandbox.commit_all("dvc.lock from CI")
    sandbox.push("improve")
    second = sandbox.act("pull_request", "train.yml", number=1)
    if not second.ok:
        raise RuntimeError(f"second push failed:\n{second.summary()}")
    times["act: second push"] = second.seconds
    times["scenario (a) total"] = sum(times.values())
    return times


def direct(root: Path) -> dict[str, float]:
    """The train job's commands run directly in a clone of the PR (no act)."""
    sandbox = prepare(root)
    clone = root / "direct"
    subprocess.run(
        ["git", "clone", "-q", "-b", "improve", str(root / "origin.git"), str(clone)], check=True
    )
    env = sandbox.env(
        VENV=sys.prefix,
        PATH=f"{STANDINS / 'cml'}:{STANDINS / 'bin'}:{sandbox.env()['PATH']}",
        GITOPS_ML_RECORD=str(sandbox.record),
        GITOPS_ML_PYTHON=sys.executable,
        GH_TOKEN=APP_TOKEN,
        GITHUB_REPOSITORY="gitops-ml/sandbox",
    )
    sandbox.record.mkdir(exist_ok=True)
    commands = [
        ["make", "ci-repro"],
        ["make", "gates", "AGAINST=origin/main"],
        ["make", "report", "AGAINST=origin/main"],
        [sys.executable, "-m", "scripts.comment", "pr", "--pr", "1", "reports/pr_report.md"],
    ]

    def run_all() -> None:
        for command in commands:
            subprocess.run(command, cwd=clone, env=env, capture_output=True, check=True)

    return {"direct: the same commands, first push": timed(run_all)}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dev.bench_workflows", description=__doc__
    )
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        baseline = direct(Path(first))
        measured = with_act(Path(second))
    print("| measurement | seconds |\n|---|---|")
    for name, seconds in {**baseline, **measured}.items():
        print(f"| {name} | {seconds:.1f} |")
    first_push = measured["act: first push (train + comment jobs)"]
    print(f"| ratio act first push / direct | {first_push / baseline[next(iter(baseline))]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
