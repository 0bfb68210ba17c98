"""The deployment half of ``make demo``: staging, an A/B experiment in production, a decision.

``python -m scripts.dev.demo_ab --bento-file dist/credit_risk-<sha>.bento``, after the Bento is
built, on copies of the state files under ``.demo/`` (the tracked ones are not touched):

1. release the Bento to **staging** (local driver: Bento + nginx + Prometheus) and smoke-test it;
2. build a **challenger**: the same pipeline with ``evaluate.threshold`` lowered (a copy of the
   project sharing this checkout's DVC cache, so only evaluate/export rerun);
3. **production**: the Bento as champion, the challenger at the split of the demo's state;
4. simulated traffic with labels (``scripts.dev.traffic``), feedback for every prediction;
5. the **decision** (``scripts.promote``) and the state file's change, shown as a diff;
6. the **drift act** (:mod:`scripts.dev.demo_drift`): drifted traffic, the drift job, the
   alert through Alertmanager and the relay, and the retraining PR it leads to.

Everything is stopped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from scripts import promote
from scripts.cd import local_driver
from scripts.cd.bento_store import bento_tag
from scripts.cd.checks import check
from scripts.cd.errors import DeliveryError
from scripts.cd.reconcile import release
from scripts.cd.runtime import DriverSettings
from scripts.cd.state import load_state
from scripts.dev import demo_drift
from scripts.dev.traffic import simulate
from scripts.dev.workspace import PROJECT_ROOT, copy_project, edit_yaml, tool_env

DEMO = PROJECT_ROOT / ".demo"


def build_challenger(threshold: float, version: str) -> Path:
    """The Bento of the pipeline with another decision threshold; its archive in dist/."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = copy_project(Path(scratch) / "challenger")
        env = {
            **tool_env(),
            "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(PROJECT_ROOT / ".bentoml")),
        }

        def run(*command: str) -> None:
            subprocess.run(command, cwd=copy, env=env, check=True, capture_output=True)

        run("dvc", "cache", "dir", str(PROJECT_ROOT / ".dvc" / "cache"))
        edit_yaml(copy / "params.yaml", {"evaluate.threshold": threshold})
        run("dvc", "repro")  # ingest..train come back from the run-cache
        out = PROJECT_ROOT / "dist"
        run(
            sys.executable, "-m", "scripts.build_bento", "--version", version, "--out-dir", str(out)
        )
    return out / f"credit_risk-{version}.bento"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the deployment demo; exit 1 naming the step that failed."""
    parser = argparse.ArgumentParser(prog="python -m scripts.dev.demo_ab", description=__doc__)
    parser.add_argument("--bento-file", type=Path, required=True)
    parser.add_argument("--challenger-threshold", type=float, default=0.1)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--keep", action="store_true", help="leave the environments running")
    args = parser.parse_args(argv)
    states = DEMO / "deployments"
    shutil.rmtree(states, ignore_errors=True)
    shutil.copytree(
        PROJECT_ROOT / "bentos" / "deployments", states, ignore=shutil.ignore_patterns("k8s")
    )
    os.environ["GITOPS_ML_RUN_DIR"] = str(DEMO / "run")
    os.environ.setdefault("GITOPS_ML_SCRAPE_INTERVAL", "2s")
    production = states / "production.yaml"
    edit_yaml(
        production, {"experiment.min_samples_per_arm": 200, "experiment.challenger_weight": 50}
    )
    shutil.rmtree(DEMO / "github", ignore_errors=True)
    github = demo_drift.github(DEMO / "github")  # before the deploys: the relay's settings
    settings = DriverSettings.from_env()
    try:
        for env in ("staging", "production"):
            local_driver.down(settings, env)
        # A fresh start: an earlier demo's alert state (Prometheus restores it, Alertmanager
        # and the relay remember what they sent) would be taken for this one's.
        shutil.rmtree(DEMO / "run", ignore_errors=True)
        print("== 1. staging")
        release(settings, "staging", args.bento_file, states)
        staging = local_driver.running_or_fail(settings, "staging")
        print(f"smoke: passed {len(check(staging.url))} checks through the staging router")
        print(
            f"== 2. challenger: the same model with decision threshold {args.challenger_threshold}"
        )
        champion_version = bento_tag(args.bento_file).split(":")[1]
        suffix = f"{args.challenger_threshold:g}".replace(".", "")
        version = f"{champion_version}-t{suffix}"
        challenger = build_challenger(args.challenger_threshold, version)
        print(f"built {challenger}")
        print("== 3. production: champion, then the challenger as A/B")
        release(settings, "production", args.bento_file, states)
        release(settings, "production", challenger, states)
        experiment = production.read_text(encoding="utf-8")
        running = local_driver.running_or_fail(settings, "production")
        print(f"== 4. {args.rows} requests with feedback through {running.url}")
        print(simulate(running.url, args.rows, 300, 1.0, seed=7).as_dict())
        time.sleep(5)  # two scrapes
        print("== 5. the decision (python -m scripts.promote)")
        code = promote.main(
            [
                "--env",
                "production",
                "--state-dir",
                str(states),
                "--out",
                str(DEMO / "promotion.json"),
                "--write",
            ]
        )
        decided = production.read_text(encoding="utf-8")
        diff = difflib.unified_diff(
            experiment.splitlines(keepends=True),
            decided.splitlines(keepends=True),
            "production.yaml (experiment)",
            "production.yaml (decided)",
        )
        print("".join(diff) or "state unchanged (continue)")
        if decided != experiment:
            print("== 6. reconcile production to the decided state")
            local_driver.apply(settings, load_state(production))
        running = local_driver.running_or_fail(settings, "production")
        demo_drift.act(
            github,
            running.url,
            running.pushgateway_url,
            settings.run_dir("production") / "logs" / "predictions",
            DEMO / "drift",
        )
        return code
    except (DeliveryError, subprocess.CalledProcessError, OSError, TimeoutError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            for env in ("staging", "production"):
                local_driver.down(settings, env)


if __name__ == "__main__":
    sys.exit(main())
