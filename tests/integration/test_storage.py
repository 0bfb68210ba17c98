"""Shared storage against a real S3 endpoint on loopback (moto's server, scripts/dev/s3.py).

DVC talks to it through dvc-s3 and the drift job reads logs through s3fs: the code paths a
team's bucket takes. A "fresh clone" is ``git clone`` of the trained copy: no DVC cache, no
outputs, only what git tracks.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.generate import Window, generate
from scripts.dev.s3 import S3Endpoint, s3_server
from tests.helpers import Repo, make_repo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STAGES = ("ingest", "validate", "split", "train", "evaluate", "export")
OUTPUTS = ("data/raw/dataset.parquet", "models/model.joblib", "models/model.onnx", "metrics.json")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with s3_server("team-bucket") as endpoint:
        yield endpoint


class S3Repo(Repo):
    """A copy whose commands get the S3 endpoint's credentials."""

    def __init__(self, path: Path, s3: S3Endpoint) -> None:
        super().__init__(path)
        self.s3 = s3

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**self.s3.env(), VENV=sys.prefix, DVC_NO_ANALYTICS="1", **extra)

    def clone(self, destination: Path, ref: str = "HEAD") -> S3Repo:
        """``git clone`` at ``ref``: what a new runner or a colleague starts from."""
        subprocess.run(["git", "clone", "-q", str(self.path), str(destination)], check=True)
        clone = S3Repo(destination, self.s3)
        clone.run("git", "checkout", "-q", ref)
        return clone


def ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, s3: S3Endpoint) -> S3Repo:
    """Trained by CI: outputs and run-cache pushed to S3, dvc.lock committed."""
    repo = S3Repo(make_repo(tmp_path_factory.mktemp("s3") / "repo").path, s3)
    s3.configure_dvc(repo.path)
    repo.run("git", "commit", "-q", "-am", "Shared storage: an S3 bucket")
    repo.run("make", "release-repro")  # main trained: its objects in the default remote
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "Trained (dvc.lock, metrics)")
    return repo


def test_the_remote_is_the_s3_bucket_not_a_local_folder(trained: S3Repo, s3: S3Endpoint) -> None:
    remotes = trained.run("dvc", "remote", "list").stdout.splitlines()
    assert f"shared  {s3.remote_url()}    (default)" in remotes
    listed = trained.run("python", "-c", LIST_BUCKET, s3.bucket).stdout.split()
    assert any(key.startswith("dvc/files/md5/") for key in listed), listed[:5]
    assert any(key.startswith("dvc/runs/") for key in listed), "the run-cache was not pushed"


LIST_BUCKET = """
import sys, s3fs
for key in s3fs.S3FileSystem().find(sys.argv[1]):
    print(key.split('/', 1)[1])
"""


def test_make_repro_on_a_fresh_clone_restores_every_stage_without_running_one(
    trained: S3Repo, tmp_path: Path
) -> None:
    clone = trained.clone(tmp_path / "fresh")
    assert not (clone.path / "models" / "model.onnx").exists()
    output = clone.run("make", "repro").stdout
    assert ran(output) == []
    for name in OUTPUTS:
        assert clone.md5(name) == trained.md5(name), name
    assert clone.run("git", "status", "--porcelain").stdout == ""


def test_sync_lock_restores_a_pr_trained_by_ci_from_the_run_cache(
    trained: S3Repo, tmp_path: Path
) -> None:
    # CI trained the PR's head (a new max_depth) and pushed its run-cache; the author's
    # checkout has the params change but the old lock.
    ci = trained.clone(tmp_path / "ci")
    ci.run("git", "checkout", "-q", "-b", "deeper")
    ci.set_params({"train.sklearn.max_depth": 4})
    ci.run("git", "commit", "-q", "-am", "Deeper trees")
    trained_by_ci = ci.run("make", "ci-repro").stdout
    assert ran(trained_by_ci) == ["train", "evaluate", "export"]
    author = ci.clone(tmp_path / "author", ref="deeper")
    synced = author.run("make", "sync-lock").stdout
    # No retraining: train and export come from the run-cache; evaluate keeps
    # metrics.json and the plots out of DVC's cache (cache: false), which DVC never
    # run-caches, so it re-scores the restored model (deterministic, a second).
    assert ran(synced) == ["evaluate"]
    assert "Stage 'train' is cached - skipping run" in synced
    assert "Stage 'export' is cached - skipping run" in synced
    assert author.md5("dvc.lock") == ci.md5("dvc.lock")
    assert author.md5("models/model.onnx") == ci.md5("models/model.onnx")


def test_an_output_neither_in_the_remote_nor_reproducible_fails_make_repro(
    trained: S3Repo, tmp_path: Path
) -> None:
    # A team's own data file, tracked with `dvc add` but never pushed.
    author = trained.clone(tmp_path / "author")
    extra = author.path / "data" / "external" / "applications.csv"
    extra.write_text("id\n1\n", encoding="utf-8")
    author.run("dvc", "add", str(extra.relative_to(author.path)))
    author.run("git", "add", "-A")
    author.run("git", "commit", "-q", "-m", "Our data (not pushed)")
    fresh = author.clone(tmp_path / "fresh")
    result = fresh.run("make", "repro", check=False)
    assert result.returncode != 0
    assert "data/external/applications.csv" in result.stdout + result.stderr


def test_the_drift_job_reads_prediction_logs_from_s3(trained: S3Repo, tmp_path: Path) -> None:
    # The production service's logs, shipped to the bucket as BentoML writes them.
    frame = generate(600, 21, Window(drift="covariate"))
    now = dt.datetime.now()
    lines = [
        json.dumps(
            {
                "timestamp": (now - dt.timedelta(minutes=600 - i)).isoformat(),
                "event": "prediction",
                "variant": "champion",
                "model_version": "test",
                **{key: value for key, value in row.items() if key != "default"},
                "prediction_id": f"{i:032x}-0",
                "prediction": 0,
                "probability": float(np.clip(0.1 + 0.001 * i, 0, 1)),
            },
            default=str,
        )
        for i, row in enumerate(frame.drop(columns=["event_time"]).to_dict("records"))
    ]
    local = tmp_path / "data.0.log"
    local.write_text("\n".join(lines) + "\n", encoding="utf-8")
    url = f"s3://{trained.s3.bucket}/logs/production"
    trained.run("python", "-c", UPLOAD, str(local), f"{url}/credit_risk/data/data.0.log")
    out = tmp_path / "drift"
    result = trained.run(
        "python", "-m", "monitoring.drift", "--logs", url, "--out-dir", str(out), check=False
    )
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["window"]["rows"] == 600
    assert summary["columns"]["age"]["drifted"] is True, summary["columns"]["age"]


UPLOAD = """
import sys, s3fs
s3fs.S3FileSystem().put_file(sys.argv[1], sys.argv[2])
"""


def test_no_credential_is_committed_with_the_remote(trained: S3Repo) -> None:
    # .dvc/config names the bucket and the endpoint; keys come from the environment.
    config = (trained.path / ".dvc" / "config").read_text(encoding="utf-8")
    assert "endpointurl = http://127.0.0.1:" in config
    assert trained.s3.env()["AWS_SECRET_ACCESS_KEY"] not in config
