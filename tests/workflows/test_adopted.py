"""The loop in a team's repository: GitHub's rules under the "adopted repository" profile.

One scenario per defect that kept the loop from being green, hands-free and safe in an
adopter's repository (issue #19's list). Each failed for the reason its docstring states,
marked ``xfail(strict=True)`` naming the issue that fixes it; that issue removed the mark
(#20: scenarios 1-8; #21: 9 and 10). Where the defect is a property of the
workflow files under GitHub's rules (who is cancelled, which events start what, how many
approvals a release takes), the scenario asks the harness's pure models
(:mod:`scripts.dev.harness.concurrency`, :mod:`scripts.dev.harness.workflows`) about the
real files; where it is behaviour, it runs the real code against the sandbox's origin,
record and S3 endpoint. The scenarios that need a running production (5, 8) live with the
module sandbox in ``test_workflows.py``; the one that needs two trainings (11) in
``tests/integration/test_pipeline.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.dev.harness.concurrency import Group
from scripts.dev.harness.github.environments import branch_refusal, job_secrets
from scripts.dev.harness.github.tokens import APP_TOKEN
from scripts.dev.harness.sandbox import Sandbox, adopt, create_sandbox
from scripts.dev.harness.workflows import (
    event_filters,
    job_concurrency,
    job_environments,
    load,
    matrix_row,
    run_commands,
    substitute,
    triggered_workflows,
)
from scripts.dev.s3 import S3Endpoint, s3_server
from tests.helpers import defect

pytestmark = [pytest.mark.integration, pytest.mark.workflow]

STATE_FILE = "bentos/deployments/production.yaml"
MODEL_CHANGE = ["dvc.lock", "metrics.json", "params.yaml"]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with s3_server("adopted-bucket", iam=True) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory, s3: S3Endpoint) -> Sandbox:
    """A team's repository as README sets it up.

    S3 storage, main protected by the required checks with no bypass actor, production
    behind a reviewer, auto-merge allowed.
    """
    return adopt(create_sandbox(tmp_path_factory.mktemp("adopted"), s3=s3), s3=s3)


def workflow(sandbox: Sandbox, name: str) -> Path:
    return sandbox.work / ".github" / "workflows" / name


def releases(sandbox: Sandbox, changed: list[str]) -> bool:
    """Whether release.yml's ``release-needed`` says ``true`` for a push changing ``changed``.

    It compares the content digest of what a Bento built from the commit would serve (the
    model, ``dvc.lock``'s, and every file bentofile.yaml includes) with the variants the
    state names; a push that changes none of those (a state PR's merge, a README edit)
    releases nothing and its deploy jobs are skipped. (Run for real: test_workflows.py (j).)
    """
    spec = yaml.safe_load((sandbox.work / "bentofile.yaml").read_text(encoding="utf-8"))
    covered = {"bentofile.yaml", "dvc.lock"}
    for pattern in spec["include"]:
        covered.update(str(path.relative_to(sandbox.work)) for path in sandbox.work.glob(pattern))
    return bool(covered & set(changed))


def production_approvals(sandbox: Sandbox, event: str, changed: list[str]) -> list[str]:
    """``workflow / job`` of the jobs a push starts that wait for production's reviewer.

    A job skipped by its ``if:`` asks no reviewer: release.yml's deploy jobs run only when
    the push has something to release (:func:`releases`).
    """
    waiting = []
    for started in triggered_workflows(sandbox.work, event, changed, "main"):
        for job, spec in load(workflow(sandbox, started))["jobs"].items():
            gated = "needs.build.outputs.release" in str(spec.get("if", ""))
            if gated and not releases(sandbox, changed):
                continue
            if job_environments(spec) & sandbox.protected:
                waiting.append(f"{started} / {job}")
    return waiting


def test_scenario_1_an_hourly_promote_never_cancels_a_pending_production_apply(
    adopted: Sandbox,
) -> None:
    """The hourly promote against an apply that waits for production's reviewer.

    A merged state PR's deploy.yml `apply (production)` may wait for a required reviewer: a
    pending entry of environment-production. The hourly promote arrives in the same group;
    under `queue: single` GitHub cancels the pending apply ("cancelled", not failed), and the
    approved state is never applied.
    """
    groups: dict[str, Group] = {}
    arrivals = [
        ("deploy.yml", "apply", "push", "production"),
        ("promote.yml", "decide", "schedule", ""),
    ]
    for name, job, event, environment in arrivals:
        spec = job_concurrency(workflow(adopted, name), job, event, environment)
        if spec is None:
            continue  # no job-level group: nothing this job can cancel or be cancelled by
        # The GitHub environment the job's matrix row targets: does it wait for a reviewer?
        declared = load(workflow(adopted, name))["jobs"][job]
        target = substitute(str(declared.get("environment", "")), matrix_row(declared, environment))
        waits = target in adopted.protected
        groups.setdefault(spec.group, Group(spec.group)).arrive(f"{name} / {job}", spec, waits)
    states = {entry: state for group in groups.values() for entry, state in group.states().items()}
    defect(states.get("deploy.yml / apply") == "cancelled", f"GitHub cancels the apply: {states}")


def test_scenario_2_a_release_blocked_by_a_state_pr_resumes_when_that_pr_merges(
    adopted: Sandbox,
) -> None:
    """Merging the state PR that blocked a release starts that release again.

    release.yml stopped at `make state-pending` while a state PR was open; that PR's
    merge (a push to main changing only the state) must run the release's build again.
    """
    started = triggered_workflows(adopted.work, "push", [STATE_FILE], "main")
    resumed = [
        name
        for name in started
        for job in load(workflow(adopted, name))["jobs"]
        if any("make bento" in command for command in run_commands(workflow(adopted, name), job))
    ]
    defect(not resumed, f"the state PR's merge starts {started}, none of which releases")


def test_scenario_3_one_release_takes_at_most_one_production_approval(adopted: Sandbox) -> None:
    """Approvals one release takes: its push to main, then its state PR's merge.

    A release: its push to main (release.yml), then its state PR's merge (deploy.yml
    re-applies the same state). Each job that names production waits for a reviewer.
    """
    waits = production_approvals(adopted, "push", MODEL_CHANGE)
    waits += production_approvals(adopted, "push", [STATE_FILE])
    defect(len(waits) > 1, f"one release, {len(waits)} production approvals: {waits}")


def test_scenario_4_a_closed_release_state_pr_leaves_no_challenger_serving(
    adopted: Sandbox,
) -> None:
    """What runs after a release's state PR is closed unmerged.

    The release applied its challenger before its state PR; a person closes the PR.
    Closing starts nothing (no workflow runs on `pull_request: closed`); only scheduled
    workflows run next, and none of them makes what runs equal to main's state unless
    STATE_PUSH=direct (promote's `make apply` is guarded by it). A reading of the workflow
    files: the delivery issue's reconcile test replaces it with the running production.
    """
    reconciling = []  # the running case: tests/integration/test_deploy.py, test_reconcile_*
    for path in sorted((adopted.work / ".github" / "workflows").glob("*.yml")):
        on = event_filters(load(path))
        closed = "closed" in ((on.get("pull_request") or {}).get("types") or [])
        if "schedule" not in on and not closed:
            continue
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps") or []:
                command = str(step.get("run", ""))
                # Unconditional: no `if:`, or one that only skips a cancelled run.
                always = str(step.get("if", "${{ !cancelled() }}")) == "${{ !cancelled() }}"
                if ("make apply" in command or "make reconcile" in command) and always:
                    reconciling.append(f"{path.name} / {name}")
    defect(not reconciling, "no scheduled job, nor one on a closed PR, applies main's state")


def propose(
    sandbox: Sandbox,
    checkout: Path,
    *args: str,
    hour: int = 0,
    bento: str = "credit_risk:decided",
) -> subprocess.CompletedProcess[str]:
    """``python -m scripts.gitops propose`` as a job does, from a fresh clone, App token.

    ``hour``: when the job runs (hours after the first); git's commit dates follow it.
    """
    subprocess.run(["git", "clone", "-q", str(sandbox.origin), str(checkout)], check=True)
    state = checkout / STATE_FILE
    document = yaml.safe_load(state.read_text(encoding="utf-8"))
    document["variants"] = [{"name": "champion", "bento": bento, "weight": 100}]
    state.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    body = checkout.parent / f"{checkout.name}-body.md"
    body.write_text("## A/B decision: PROMOTE\n", encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.gitops",
            "propose",
            STATE_FILE,
            "--title",
            "Promote",
            "--body-file",
            str(body),
            "--branch",
            "gitops/production-decision",
            *args,
        ],
        cwd=checkout,
        env={
            **sandbox.github_env(APP_TOKEN),
            "GIT_AUTHOR_DATE": f"{1_780_000_000 + 3600 * hour} +0000",
            "GIT_COMMITTER_DATE": f"{1_780_000_000 + 3600 * hour} +0000",
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_scenario_6_an_unchanged_decision_leaves_its_open_pr_alone(
    adopted: Sandbox, tmp_path: Path
) -> None:
    """Two hours, one decision, one open PR.

    The hourly promote reaches the same decision twice while its PR is open: the second
    hour pushes a new commit anyway (CI reruns; "dismiss stale approvals" drops reviews).
    A decision that changes must still reach the PR (the control).
    """
    seen = len(adopted.pushes())
    for hour in (1, 2):
        result = propose(adopted, tmp_path / f"hour-{hour}", hour=hour)
        assert result.returncode == 0, result.stderr
    pushes = [
        p for p in adopted.pushes()[seen:] if p["ref"] == "refs/heads/gitops/production-decision"
    ]
    changed = propose(adopted, tmp_path / "hour-3", hour=3, bento="credit_risk:other")
    assert changed.returncode == 0, changed.stderr
    after = [
        p for p in adopted.pushes()[seen:] if p["ref"] == "refs/heads/gitops/production-decision"
    ]
    assert len(after) == len(pushes) + 1, "a changed decision did not reach its PR"
    defect(len(pushes) > 1, f"{len(pushes)} pushes to the open decision PR for one decision")


def test_scenario_7_a_state_change_reaches_main_under_branch_protection(
    adopted: Sandbox, tmp_path: Path
) -> None:
    """STATE_PUSH=direct under a team's branch protection.

    README offers STATE_PUSH=direct for hands-free state changes; with main protected by
    the required checks and no bypass actor (README's set-up), the App's push is refused
    (GH006/GH013), the command fails and the decision is lost: neither on main nor in a PR
    that could merge once its checks pass.
    """
    before = adopted.origin_git("rev-parse", "refs/heads/main").stdout.strip()
    result = propose(adopted, tmp_path / "direct", "--direct")
    after = adopted.origin_git("rev-parse", "refs/heads/main").stdout.strip()
    proposed = [
        p
        for p in adopted.github()["pulls"]
        if p["state"] == "open" and p["head"].startswith("gitops/")
    ]
    landed = after != before or any(p.get("auto_merge") for p in proposed)
    defect(not landed, f"exit {result.returncode}: {result.stderr.strip()[-400:]}")


def test_scenario_9_a_pr_job_cannot_write_the_store_releases_trust(
    adopted: Sandbox, s3: S3Endpoint
) -> None:
    """What a pull request's job can do to the store releases and rollbacks read.

    The keys a pull_request run of train.yml receives (its jobs' environments, GitHub's
    branch policies applied to ``refs/pull/N/merge``) against the IAM-enforcing S3
    endpoint: they may write the PR prefix, and get 403 on the archived Bentos a rollback
    deploys and on main's content-addressed objects. Before #21 they were the repository's
    keys, and moto accepted any key.
    """
    (environment,) = job_environments(load(workflow(adopted, "train.yml"))["jobs"]["train"])
    policy = adopted.environments[environment]
    assert branch_refusal(environment, policy, "refs/pull/41/merge") is None  # it may train
    secrets = job_secrets(adopted.secrets, adopted.environments, environment)
    keys = {k: v for k, v in secrets.items() if k.startswith("AWS_")}
    assert keys, "a PR's run gets no storage keys at all: it could not train"
    import s3fs

    fs = s3fs.S3FileSystem(
        key=keys.get("AWS_ACCESS_KEY_ID"),
        secret=keys.get("AWS_SECRET_ACCESS_KEY"),
        client_kwargs={"endpoint_url": s3.url, "region_name": "us-east-1"},
        skip_instance_cache=True,
    )
    prefix = f"{s3.bucket}/dvc-{adopted.root.name}"
    fs.pipe(f"{prefix}/pr/files/md5/00/a-pr-result", b"a PR's own result")
    assert fs.cat(f"{prefix}/pr/files/md5/00/a-pr-result") == b"a PR's own result"
    written = []
    for target in (f"{prefix}/bentos/credit_risk/champion.bento", f"{prefix}/files/md5/00/main"):
        try:
            fs.pipe(target, b"a PR's own archive")
        except PermissionError:
            continue
        written.append(target)
    defect(bool(written), f"a PR's keys wrote {', '.join(f's3://{t}' for t in written)}")


def test_scenario_10_a_pr_editing_its_workflow_gets_no_secret_on_the_deploy_runner(
    adopted: Sandbox,
) -> None:
    """A PR that edits its own workflow to reach the deploy runner.

    pull_request runs the PR's merge commit's workflow files: a branch adds a job on the
    deploy runner. Its step must see no production secret (the App's key lives in
    environments only main may use) and its deploy step must refuse to run
    (scripts/cd/guard.py); before #21 the App's key was a repository secret in reach.
    """
    adopted.git("checkout", "-q", "-B", "edit-workflow", "main")
    path = workflow(adopted, "train.yml")
    document = load(path)
    checkout = next(
        step["uses"]
        for spec in document["jobs"].values()
        for step in spec["steps"]
        if str(step.get("uses", "")).startswith("actions/checkout@")
    )
    document["jobs"]["reach"] = {
        "runs-on": ["self-hosted", "deploy"],
        "steps": [
            {
                "env": {"KEY": "${{ secrets.GITOPS_APP_KEY }}"},
                "run": 'echo "secret check: ${KEY:+in reach}${KEY:-absent} on $GITOPS_ML_MACHINE"',
            },
            {"uses": checkout, "with": {"persist-credentials": False}},
            {"uses": "./.github/actions/setup"},
            {
                # (The outcome is built at run time: act's log echoes the command's text.)
                "run": "if make deploy DEPLOY_ENV=production BENTO_FILE=dist/none.bento; "
                'then echo "deploy step: $(echo ran)"; else echo "deploy step: exit $?"; fi'
            },
        ],
    }
    document.pop(True, None)
    document["on"] = {"pull_request": None}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    adopted.commit_all("A PR that edits its own workflow")
    adopted.push("edit-workflow")
    try:
        run = adopted.act("pull_request", "train.yml", number=40, job="reach")
    finally:
        adopted.git("checkout", "-q", "main")
    output = run.output("reach")
    assert "secret check:" in output, output[-2000:]  # the job ran on the deploy runner
    assert "deploy step:" in output, output[-2000:]
    defect("secret check: in reach" in output, output[-600:])
    defect("deploy step: ran" in output, output[-600:])
    assert "refusing to release production from a pull_request run on refs/pull/40/merge" in (
        output
    ), output[-2000:]


def test_the_adopted_profile_refuses_a_push_without_the_required_checks(
    adopted: Sandbox,
) -> None:
    """Branch protection as GitHub enforces it.

    A person's push to main without the required checks is refused (a ruleset: GH013),
    the App's too while it is no bypass actor; once it is one, the same push lands.
    """
    adopted.git("checkout", "-q", "main")
    (adopted.work / "docs" / "note.md").write_text("A note.\n", encoding="utf-8")
    adopted.commit_all("docs: a note")
    refused = adopted.run("git", "push", "-q", "origin", "main", check=False)
    assert refused.returncode != 0
    assert "GH013: Repository rule violations found for refs/heads/main." in refused.stderr
    assert "4 of 4 required status checks are expected." in refused.stderr
    app = {"GH_TOKEN": APP_TOKEN}
    assert adopted.run("git", "push", "-q", "origin", "main", env=app, check=False).returncode
    adopt(adopted, bypass=("app",))
    try:
        assert adopted.run("git", "push", "-q", "origin", "main", env=app).returncode == 0
        assert adopted.pushes()[-1]["by"] == "app"
    finally:
        adopt(adopted)


def test_auto_merge_merges_a_state_pr_once_its_required_checks_pass(adopted: Sandbox) -> None:
    """Auto-merge as GitHub does it.

    Refused while the repository does not allow it; once allowed, the PR merges when the
    required checks passed on its head, as the App that enabled it (its push starts the
    workflows), and not before.
    """
    adopted.git("checkout", "-q", "-B", "gitops/auto", "main")
    (adopted.work / "docs" / "auto.md").write_text("A state change.\n", encoding="utf-8")
    head = adopted.commit_all("A state change")
    adopted.push("gitops/auto")
    adopted.git("checkout", "-q", "main")
    body = adopted.root / "auto-body.md"
    body.write_text("state\n", encoding="utf-8")
    env = adopted.github_env(APP_TOKEN)

    def gh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["gh", *args], cwd=adopted.work, env=env, capture_output=True, text=True, check=False
        )

    created = gh("pr", "create", "--head", "gitops/auto", "--title", "t", "--body-file", str(body))
    assert created.returncode == 0, created.stderr
    adopt(adopted, auto_merge=False)
    refused = gh("pr", "merge", "--auto", "--squash", "gitops/auto")
    assert refused.returncode == 1
    assert "Auto merge is not allowed for this repository" in refused.stderr
    adopt(adopted)
    try:
        assert gh("pr", "merge", "--auto", "--squash", "gitops/auto").returncode == 0
        assert adopted.auto_merge() == []  # no check has passed on the head yet
        rule = adopted.state.protection("main")
        assert rule is not None
        adopted.state.set_checks(head, dict.fromkeys(rule.required_checks, "success"))
        (number,) = adopted.auto_merge()
    finally:
        adopt(adopted)
    (pull,) = [p for p in adopted.github()["pulls"] if p["number"] == number]
    assert pull["state"] == "merged"
    last = adopted.pushes()[-1]
    assert (last["ref"], last["by"]) == ("refs/heads/main", "app")
    assert adopted.origin_git("merge-base", "--is-ancestor", head, "main").returncode == 0
