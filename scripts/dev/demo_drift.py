"""The drift act of ``make demo``: drifted traffic → drift job → alert → retraining PR.

Run by :mod:`scripts.dev.demo_ab` after its A/B decision, against the same production:

1. a **stand-in GitHub** is set up before production is deployed: a sandbox clone with a bare
   ``origin`` and the recording GitHub stand-ins (:mod:`scripts.dev.harness`), so the relay the
   deploy starts has an API to dispatch to and the retraining PR somewhere to go;
2. **drifted, labelled traffic** (younger applicants: ``--drift covariate``) through the
   production router, sent unmarked, as customers' (``make traffic`` marks its requests
   synthetic, and the drift job would leave them out);
3. the **drift job** on that window (``python -m monitoring.drift``), which pushes its scores
   to production's Pushgateway; its report and summary are printed;
4. Prometheus's ``DataDriftDetected`` holds (2 s here instead of 30 min), Alertmanager sends
   it to the **relay**, which dispatches ``drift-alert`` to GitHub;
5. what ``drift.yml`` then does on GitHub: the **retraining PR** (``monitoring.retrain``) in
   the sandbox, with the drift summary as its body.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from scripts.dev.harness.github.tokens import APP_TOKEN, REPOSITORY
from scripts.dev.harness.sandbox import Sandbox, create_sandbox
from scripts.dev.traffic import simulate
from scripts.dev.workspace import PROJECT_ROOT

WINDOW = "demo-drift"


def github(root: Path) -> Sandbox:
    """The stand-in GitHub, and the environment the deploy gives the relay."""
    sandbox = create_sandbox(root)
    # The demo's model is minutes old: retrain whatever its age.
    sandbox.set_params({"monitoring.retraining.min_model_age_hours": 0})
    sandbox.commit_all("Demo: retrain whatever the model's age")
    sandbox.push("main")
    os.environ.update(
        {
            "GITOPS_ML_DISPATCH_TOKEN_FILE": str(root / "dispatch-token"),
            "GITOPS_ML_GITHUB_API": sandbox.api_url,
            "GITHUB_REPOSITORY": REPOSITORY,
            # The rules hold 2 s instead of 30 min; Alertmanager sends after 1 s.
            "GITOPS_ML_ALERT_FOR": "2s",
            "GITOPS_ML_ALERT_GROUP_WAIT": "1s",
        }
    )
    return sandbox


def act(sandbox: Sandbox, router: str, pushgateway: str, logs: Path, out: Path) -> None:
    """Steps 2-5 of the module docstring.

    Raises:
        subprocess.CalledProcessError: When the drift job could not run or the PR failed.
        TimeoutError: When the alert never reached GitHub.
    """
    start = dt.datetime.now()
    print("== 7. drifted traffic: younger applicants, half of them labelled later")
    # Unmarked: standing in for customers, these rows are the window the drift job judges.
    tally = simulate(router, 1500, 300, 0.5, seed=23, drift="covariate", synthetic=None)
    print(tally.as_dict())
    print("== 8. the drift job on that window (python -m monitoring.drift)")
    job = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring.drift",
            *(f"--logs={log}" for log in sorted(logs.glob("*"))),
            f"--start={start.isoformat()}",
            f"--pushgateway={pushgateway}",
            f"--out-dir={out}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    print(job.stdout, end="")
    if job.returncode not in (0, 1):
        raise subprocess.CalledProcessError(job.returncode, job.args, job.stdout, job.stderr)
    print(f"report: {out / 'report.html'}; summary: {out / 'summary.md'}")
    print("== 9. DataDriftDetected -> Alertmanager -> relay -> GitHub (workflow_dispatch)")
    dispatch, *_ = sandbox.wait_for_dispatches()
    print(f"dispatched {dispatch['workflow']} on {dispatch['ref']}: {dispatch['inputs']}")
    print("== 10. what drift.yml does on that dispatch: the retraining PR")
    env = {**sandbox.github_env(APP_TOKEN), "GITOPS_ML_RETRAIN_TOKEN_KIND": "app"}
    opened = subprocess.run(
        [sys.executable, "-m", "monitoring.retrain", f"--drift-dir={out}", f"--window={WINDOW}"],
        cwd=sandbox.work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(opened.stdout, end="")
    if opened.returncode != 0:
        raise subprocess.CalledProcessError(opened.returncode, opened.args, "", opened.stderr)
    for pull in sandbox.github()["pulls"]:
        print(f"PR #{pull['number']} {pull['head']} -> {pull['base']}: {pull['title']}")
