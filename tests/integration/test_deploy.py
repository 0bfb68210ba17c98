"""The local deploy driver with real Bento, nginx and Prometheus processes on loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.exit_codes import ExitCode
from scripts import promote
from scripts.cd import local_driver, prometheus
from scripts.cd.bento_store import import_bento
from scripts.cd.errors import DeployError
from scripts.cd.processes import alive, free_port
from scripts.cd.promotion import Decision, decide, decide_experiment
from scripts.cd.runtime import DriverSettings, Running
from scripts.cd.state import DeploymentState, parse_state, save_state
from scripts.dev.traffic import simulate
from tests.helpers import Repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bentos(
    tmp_path_factory: pytest.TempPathFactory, good_bento_copy: Callable[[Path], Repo]
) -> dict[str, Path]:
    """Two Bentos of the same model: threshold 0.5 ("good") and 0.05 ("bad" accuracy).

    Both archives lie in the module's own copy of the project: the session's "good" one
    came with the copy, the "bad" one is built there.
    """
    repo = good_bento_copy(tmp_path_factory.mktemp("bentos") / "repo")
    repo.set_params({"evaluate.threshold": 0.05})
    repo.run("dvc", "repro")
    repo.run(sys.executable, "-m", "scripts.build_bento", "--version", "bad")
    return {
        version: repo.path / "dist" / f"credit_risk-{version}.bento" for version in ("good", "bad")
    }


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, bentos: dict[str, Path]) -> Path:
    """A BentoML store into which both archives were imported (a template, never served)."""
    template = tmp_path_factory.mktemp("imported") / "bentoml"
    for archive in bentos.values():
        import_bento(template, archive)
    return template


@contextlib.contextmanager
def production_environment(run_dir: Path, checkout: Path, imported: Path) -> Iterator[str]:
    """An environment "production" with its own run dir, store, ports and fast scrapes.

    It runs from ``checkout``, the copy that built the Bentos: ``apply`` fetches a missing
    tag from the checkout's DVC remote, which must be the copy's own, never the
    repository's (an adopter's S3 bucket, unreachable from a test). Its store is a copy of
    ``imported``: what ``import_bento`` of both archives leaves, without a `bentoml import`
    per environment. Whatever it runs is stopped on the way out.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(checkout)
        monkeypatch.setenv("GITOPS_ML_RUN_DIR", str(run_dir))
        monkeypatch.setenv("GITOPS_ML_PRODUCTION_PORT", str(free_port()))
        monkeypatch.setenv("GITOPS_ML_PRODUCTION_PROMETHEUS_PORT", str(free_port()))
        monkeypatch.setenv("GITOPS_ML_SCRAPE_INTERVAL", "1s")
        shutil.copytree(imported, local_driver.store(DriverSettings.from_env(), "production"))
        try:
            yield "production"
        finally:
            local_driver.down(DriverSettings.from_env(), "production")


@pytest.fixture
def environment(tmp_path: Path, bentos: dict[str, Path], imported: Path) -> Iterator[str]:
    """A fresh environment "production" for one test (:func:`production_environment`)."""
    with production_environment(tmp_path / "run", bentos["good"].parents[1], imported) as env:
        yield env


@pytest.fixture(scope="class")
def class_environment(
    tmp_path_factory: pytest.TempPathFactory, bentos: dict[str, Path], imported: Path
) -> Iterator[str]:
    """One environment "production" for the tests of a class, stopped after the last one.

    A class shares it only where every test but the last leaves what runs as it found it,
    but for the state it applied and the traffic it sent (which no later test of the class
    reads), and the last test alone breaks something. Each test applies its own state first:
    ``apply`` reconciles whatever ran before to it.
    """
    run_dir = tmp_path_factory.mktemp("class-environment") / "run"
    with production_environment(run_dir, bentos["good"].parents[1], imported) as env:
        yield env


def apply(state: DeploymentState) -> Running:
    """``apply`` with the settings the environment fixture put in the environment."""
    return local_driver.apply(DriverSettings.from_env(), state)


def status(environment: str) -> dict[str, Any]:
    return local_driver.status(DriverSettings.from_env(), environment)


def production(
    variants: list[tuple[str, str, int]], min_samples: int = 100, **guardrails: float
) -> DeploymentState:
    return parse_state(
        {
            "environment": "production",
            "on_release": "challenger",
            "variants": [{"name": n, "bento": b, "weight": w} for n, b, w in variants],
            "experiment": {
                "min_samples_per_arm": min_samples,
                "guardrails": {"min_requests": 50, **guardrails},
            },
        },
        Path("production.yaml"),
    )


def predict(url: str, user: str | None = None) -> tuple[int, str]:
    record = {
        "age": 35,
        "income": 42000.0,
        "credit_score": 640.0,
        "loan_amount": 12000.0,
        "tenure_months": 36,
        "n_late_payments": 2,
        "region": "south",
        "product_type": "personal",
    }
    headers = {"Content-Type": "application/json", **({"X-User-Id": user} if user else {})}
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"records": [record]}).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["X-Model-Variant"]
    except OSError:
        return 0, ""


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    from scripts.cd.reaper import descendants

    return [pid, *descendants(pid)]


def traffic(running: Running, rows: int, seed: int) -> None:
    """``rows`` predictions from 300 users, each with its label as feedback; two scrapes."""
    simulate(running.url, rows=rows, users=300, feedback_fraction=1.0, seed=seed)
    time.sleep(3.0)  # two scrapes


def judge(running: Running, state: DeploymentState) -> Decision:
    """The decision on what Prometheus measured since the experiment started."""
    assert running.experiment_started is not None
    measured = prometheus.figures(running.prometheus_url, running.experiment_started, time.time())
    return decide_experiment(state, measured, 0.5)


def decide_after_traffic(environment: str, state: DeploymentState, rows: int) -> Decision:
    running = apply(state)
    traffic(running, rows, seed=3)
    return judge(running, state)


class TestChampionGoodChallengerBad:
    """Both Bentos run: an experiment is judged, the split measured, the challenger killed."""

    def test_worse_challenger_is_rolled_back_and_thin_data_continues(
        self, class_environment: str
    ) -> None:
        state = production(
            [("champion", "credit_risk:good", 50), ("challenger", "credit_risk:bad", 50)]
        )
        decision = decide_after_traffic(class_environment, state, rows=600)
        assert decision.outcome == "rollback", decision.reason
        thin = production(
            [("champion", "credit_risk:good", 50), ("challenger", "credit_risk:bad", 50)],
            min_samples=100_000,
        )
        decision = decide(decision.champion, decision.challenger, thin.experiment, 1.0)
        assert decision.outcome == "continue"
        assert "insufficient data" in decision.reason

    def test_split_is_weighted_and_sticky(self, class_environment: str) -> None:
        running = apply(
            production(
                [("champion", "credit_risk:good", 70), ("challenger", "credit_risk:bad", 30)]
            )
        )
        served = Counter(predict(running.url)[1] for _ in range(3000))
        assert sum(served.values()) == 3000
        assert served["challenger"] / 3000 == pytest.approx(0.30, abs=0.03)
        for user in (f"user-{i}" for i in range(40)):
            assert len({predict(running.url, user)[1] for _ in range(5)}) == 1

    def test_a_killed_variant_fails_over_and_comes_back_with_nothing_left_behind(
        self,
        class_environment: str,
    ) -> None:
        state = production(
            [("champion", "credit_risk:good", 50), ("challenger", "credit_risk:bad", 50)]
        )
        running = apply(state)
        challenger = running.variants["challenger"]
        old_tree = tree(challenger.pid)  # bentoml serve and its circus workers (own sessions)
        assert len(old_tree) >= 2, old_tree
        results: list[tuple[float, int]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                results.append((time.monotonic(), predict(running.url)[0]))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(challenger.pid, 9)  # the variant's main process, not its workers
        # Its supervisor restarts it on the same port, without `make apply`.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = status(class_environment)["variants"]["challenger"]
            if report["alive"] and report["pid"] not in old_tree:
                break
            time.sleep(0.5)
        # Keep the load on for a while after the kill, however fast the restart was.
        while time.monotonic() < killed + 4.0:
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join()
        # No process of the old tree is left (the workers went with it).
        assert [pid for pid in old_tree if alive(pid)] == []
        assert report["alive"] is True
        assert report["pid"] not in old_tree
        after = [status for moment, status in results if moment > killed + 2.0]
        assert after
        assert after.count(200) == len(after)  # nginx failed over meanwhile
        from scripts.cd.checks import wait_ready

        wait_ready(f"http://127.0.0.1:{challenger.port}")
        assert status(class_environment)["healthy"] is True
        # apply finds nothing to do: the same programs still serve.
        again = apply(state)
        assert again.variants["challenger"].port == challenger.port
        assert again.variants["champion"].pid == running.variants["champion"].pid


def reconcile_cli(state: DeploymentState, state_dir: Path, *extra: str) -> int:
    """``python -m scripts.deploy reconcile`` against ``state`` as git's (in ``state_dir``)."""
    from scripts import deploy

    state_dir.mkdir(parents=True, exist_ok=True)
    save_state(state, state_dir / "production.yaml")
    return deploy.main(["reconcile", "--env", "production", "--state-dir", str(state_dir), *extra])


class TestChampionOnly:
    """The good Bento alone; a refused apply changes nothing, then everything is killed (last)."""

    def test_unknown_bento_is_refused_and_nothing_changes(self, class_environment: str) -> None:
        running = apply(production([("champion", "credit_risk:good", 100)]))
        with pytest.raises(DeployError, match=r"variants\.1\.bento: credit_risk:nope is not in"):
            apply(
                production(
                    [("champion", "credit_risk:good", 90), ("challenger", "credit_risk:nope", 10)]
                )
            )
        assert predict(running.url)[0] == 200

    def test_reconcile_brings_back_an_environment_whose_every_process_was_killed(
        self,
        class_environment: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        state = production([("champion", "credit_risk:good", 100)])
        running = apply(state)
        supervised = local_driver.supervisor(DriverSettings.from_env(), class_environment)
        everything = tree(int(supervised.ctl("pid")))
        assert len(everything) >= 5, everything  # supervisord, the variant, nginx, Prometheus...
        for pid in everything:  # as an OOM killer or a reboot would: no signal handler runs
            os.kill(pid, 9)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert predict(running.url)[0] == 0
        assert status(class_environment)["healthy"] is False

        summary = tmp_path / "summary.md"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        assert reconcile_cli(state, tmp_path / "git") == ExitCode.OK
        monkeypatch.delenv("GITHUB_STEP_SUMMARY")
        assert predict(running.url)[0] == 200
        assert status(class_environment)["healthy"] is True
        said = summary.read_text(encoding="utf-8")
        assert "supervisor is not running" in said
        assert "started the supervisor" in said
        assert "now: healthy" in said
        # A second reconcile finds nothing to do and changes nothing.
        pid = status(class_environment)["variants"]["champion"]["pid"]
        assert reconcile_cli(state, tmp_path / "git") == ExitCode.OK
        assert "what runs is what git says" in capsys.readouterr().out
        assert status(class_environment)["variants"]["champion"]["pid"] == pid


@pytest.fixture(scope="class")
def experiment(class_environment: str) -> tuple[DeploymentState, Running]:
    """The state applied (default guardrails) and what runs, after 600 rows with feedback."""
    state = production(
        [("champion", "credit_risk:bad", 50), ("challenger", "credit_risk:good", 50)]
    )
    running = apply(state)
    traffic(running, rows=600, seed=3)
    return state, running


class TestChampionBadChallengerGood:
    """One experiment (:func:`experiment`), two readers: the decision in code and the CLI.

    Neither changes what runs (the CLI edits state files in its own folder), so they share
    its setup.
    """

    def test_better_challenger_is_promoted(
        self, experiment: tuple[DeploymentState, Running]
    ) -> None:
        _, running = experiment
        # Identical serving code on a busy machine: the guardrails' noise model keeps a false
        # rollback rare (docs/ab-testing.md: 0.5 % for one look at this size at the default
        # confidence 0.99); a tenth of that alpha here, so the test cannot flake on it.
        state = production(
            [("champion", "credit_risk:bad", 50), ("challenger", "credit_risk:good", 50)],
            confidence=0.999,
        )
        decision = judge(running, state)
        assert decision.outcome == "promote", decision.reason
        assert decision.challenger.feedback >= 100
        assert decision.challenger.accuracy > decision.champion.accuracy  # type: ignore[operator]

    def test_promote_cli_writes_the_state_and_exits_2_without_prometheus(
        self,
        experiment: tuple[DeploymentState, Running],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        state, running = experiment
        state_dir = tmp_path / "deployments"
        save_state(state, state_dir / "production.yaml")
        args = ["--env", "production", "--state-dir", str(state_dir)]
        args += ["--out", str(tmp_path / "p.json")]
        assert promote.main([*args, "--write"]) == 0
        text = (state_dir / "production.yaml").read_text(encoding="utf-8")
        assert "credit_risk:bad" not in text
        assert "bento: credit_risk:good\n  weight: 100" in text
        # Another machine: no local driver record, Prometheus given only by URL, the
        # experiment's start read from the state file in git.
        started = dt.datetime.fromtimestamp(running.experiment_started or 0, dt.UTC)
        dated = state.experiment.model_copy(update={"started_at": started})
        save_state(state.model_copy(update={"experiment": dated}), state_dir / "production.yaml")
        by_url = [*args, "--prometheus-url", running.prometheus_url, "--write"]
        with monkeypatch.context() as elsewhere:
            elsewhere.setenv("GITOPS_ML_RUN_DIR", str(tmp_path / "another-machine"))
            assert promote.main(by_url) == 0
        text = (state_dir / "production.yaml").read_text(encoding="utf-8")
        assert "bento: credit_risk:good\n  weight: 100" in text
        save_state(state, state_dir / "production.yaml")
        unreachable = f"http://127.0.0.1:{free_port()}"
        assert promote.main([*args, "--prometheus-url", unreachable]) == ExitCode.NOT_EVALUATED


def test_reconcile_removes_a_challenger_git_no_longer_names_once_its_release_pr_is_closed(
    environment: str, tmp_path: Path
) -> None:
    from scripts.cd.reconcile import self_heal

    settings = DriverSettings.from_env()
    released = production(
        [("champion", "credit_risk:good", 90), ("challenger", "credit_risk:bad", 10)]
    )
    apply(released)  # a release applies its challenger, then opens its state PR
    git = production([("champion", "credit_risk:good", 100)])
    state_dir = tmp_path / "git"
    state_dir.mkdir()
    save_state(git, state_dir / "production.yaml")
    # While the release's state PR is open (its state file is what runs), its challenger
    # stays; so it does while GitHub cannot be asked.
    found, did = self_heal(settings, git, state_dir, [released])
    assert found == []
    assert did == ["kept what the last apply made run: its release's state PR is open"]
    found, did = self_heal(settings, git, state_dir, None)
    assert did == ["kept what the last apply made run: open state PRs unknown"]
    assert set(status(environment)["variants"]) == {"champion", "challenger"}
    # The PR was closed unmerged (no open release PR has that state): git's state wins.
    other = production(
        [("champion", "credit_risk:good", 80), ("challenger", "credit_risk:bad", 20)]
    )
    found, did = self_heal(settings, git, state_dir, [other])
    assert "challenger (credit_risk:bad) runs, but git no longer names it" in found
    assert set(status(environment)["variants"]) == {"champion"}
    assert status(environment)["healthy"] is True
