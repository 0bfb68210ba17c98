"""`dvc repro` end to end in a temporary copy of the repository (small data)."""

import json

import joblib
import pandas as pd
import pytest
import yaml

from tests.helpers import Repo, defect, make_credit_frame, make_repo, scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STAGES = ("ingest", "validate", "split", "train", "evaluate", "export")


def ran(output: str) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in output]


def test_full_run_writes_every_output(sklearn_run: Repo):
    path = sklearn_run.path
    metrics = json.loads((path / "metrics.json").read_text())
    assert set(metrics["model"]) == {"accuracy", "f1", "roc_auc", "log_loss", "precision", "recall"}
    assert metrics["n_test"] == 300
    assert metrics["model"]["roc_auc"] > 0.7
    assert metrics["baseline"]["roc_auc"] == 0.5
    assert metrics["lift"]["roc_auc"] > 0.2
    for name in ("train", "val", "test"):
        assert (path / f"data/split/{name}.parquet").is_file()
    for name in ("confusion_matrix.png", "roc.png", "precision_recall.png"):
        assert (path / "reports/figures" / name).read_bytes()[:4] == b"\x89PNG"
    roc = pd.read_csv(path / "reports/plots/roc.csv")
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert json.loads((path / "reports/validation.json").read_text())["passed"] is True
    predictions = pd.read_parquet(path / "reports/predictions.parquet")
    assert len(predictions) == 300
    model = joblib.load(path / "models/model.joblib")
    test = pd.read_parquet(path / "data/split/test.parquet")
    assert model.predict_proba(test.drop(columns=["default", "event_time"]))[:, 1] == pytest.approx(
        predictions["probability"].to_numpy()
    )


def test_second_repro_does_nothing(sklearn_run: Repo):
    result = sklearn_run.run("dvc", "repro")
    assert ran(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout
    assert "up to date" in sklearn_run.run("dvc", "status").stdout


def test_two_clean_runs_give_byte_identical_metrics(sklearn_run: Repo, tmp_path):
    other = make_repo(tmp_path / "again")
    other.run("dvc", "repro")
    for name in ("metrics.json", "reports/plots/roc.csv", "reports/predictions.parquet"):
        assert other.md5(name) == sklearn_run.md5(name), name


def test_push_then_pull_restores_outputs_on_a_fresh_checkout(sklearn_run: Repo, tmp_path):
    sklearn_run.run("dvc", "push")
    clone = sklearn_run.clone_to(tmp_path / "clone")
    clone.run("rm", "-rf", "data/raw", "data/split", "models", ".dvc/cache")
    clone.run("dvc", "pull")
    assert clone.md5("models/model.joblib") == sklearn_run.md5("models/model.joblib")
    assert ran(clone.run("dvc", "repro").stdout) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"gates.floors.roc_auc": 0.7}, []),  # gates judge the model, they do not shape it
        ({"evaluate.threshold": 0.4}, ["evaluate", "export"]),
        ({"train.sklearn.max_depth": 2}, ["train", "evaluate", "export"]),
        ({"split.seed": 7}, ["split", "train", "evaluate", "export"]),
        # The split re-runs (its schema changed) but writes the same files: training is
        # skipped; the serving spec carries the schema, so export re-runs.
        ({"data.schema.max_missing_fraction": 0.06}, ["validate", "split", "export"]),
    ],
)
def test_changing_one_param_reruns_only_dependent_stages(sklearn_run, tmp_path, change, expected):
    copy = sklearn_run.clone_to(tmp_path / "copy")
    copy.set_params(change)
    assert ran(copy.run("dvc", "repro").stdout) == expected


def test_corrupt_csv_fails_validation_and_keeps_previous_outputs(sklearn_run, tmp_path):
    copy = sklearn_run.clone_to(tmp_path / "copy")
    kept = [
        "data/split/train.parquet",
        "data/split/test.parquet",
        "models/model.joblib",
        "metrics.json",
    ]
    before = {name: copy.md5(name) for name in kept}
    frame = pd.read_parquet(copy.path / "data/raw/dataset.parquet").head(500)
    frame = frame.astype({"income": object}).drop(columns=["credit_score"])
    frame.loc[3, "income"] = "abc"
    frame.loc[4, "age"] = -5
    frame.loc[5, "region"] = "atlantis"
    frame.to_csv(copy.path / "data/external/credit.csv", index=False)
    copy.set_params({"data.source": "file", "data.path": "data/external/credit.csv"})

    result = copy.run("dvc", "repro", check=False)

    assert result.returncode != 0
    assert ran(result.stdout) == ["ingest", "validate"]
    for expected in (
        "age: expected a value >= 18.0: 1 row(s) (e.g. '-5')",
        "credit_score: required column is missing",
        "income: expected float values: 1 row(s) (e.g. 'abc')",
        "region: expected one of north, south, east, west, centre: 1 row(s) (e.g. 'atlantis')",
    ):
        assert expected in result.stderr
    report = json.loads((copy.path / "reports/validation.json").read_text())
    assert report["passed"] is False
    assert {p["column"] for p in report["problems"]} == {"age", "credit_score", "income", "region"}
    assert {name: copy.md5(name) for name in kept} == before


def test_gates_pass_then_fail_on_a_raised_floor(sklearn_run, tmp_path):
    copy = sklearn_run.clone_to(tmp_path / "gates")
    result = copy.run("python", "-m", "scripts.gates")
    assert "gates: all passed" in result.stdout
    report = json.loads((copy.path / "reports/gates.json").read_text())
    assert report["passed"] is True
    copy.set_params({"gates.floors.roc_auc": 0.99})
    failed = copy.run("python", "-m", "scripts.gates", check=False)
    assert failed.returncode == 1
    assert "gate floor_roc_auc: FAIL — roc_auc = " in failed.stderr
    assert "(floor 0.99)" in failed.stderr


def test_report_compares_a_branch_with_main(sklearn_run, tmp_path):
    copy = sklearn_run.clone_to(tmp_path / "report")
    copy.run("git", "add", "-A")
    copy.run("git", "commit", "-q", "-m", "trained on main")
    copy.run("git", "checkout", "-q", "-b", "feature")
    copy.set_params({"train.sklearn.max_depth": 2})
    copy.run("dvc", "repro")
    # On 2,000 rows a shallower tree may well fail the f1 regression gate: either way the
    # report is written and shows the verdict.
    gates = copy.run("python", "-m", "scripts.gates", "--against", "main", check=False)
    assert gates.returncode in (0, 1), gates.stderr
    copy.run("python", "-m", "scripts.report", "--against", "main")
    text = (copy.path / "reports/pr_report.md").read_text()
    assert "| train.sklearn.max_depth | 3 | 2 |" in text
    assert "| model.roc_auc | " in text
    assert "| regression_roc_auc | PASS |" in text or "| regression_roc_auc | **FAIL** |" in text


def test_a_docs_only_commit_then_a_forced_export_leaves_dvc_lock_unchanged(sklearn_run, tmp_path):
    # Nothing DVC tracks may depend on the commit: CI's lock and a developer's must match.
    copy = sklearn_run.clone_to(tmp_path / "commit")
    copy.run("git", "add", "-A")
    copy.run("git", "commit", "-q", "-m", "trained")
    tracked = ("dvc.lock", "models/serving.json", "models/model_card.md", "models/model.onnx")
    before = {name: copy.md5(name) for name in tracked}
    (copy.path / "docs" / "note.md").write_text("A docs-only change.\n", encoding="utf-8")
    copy.run("git", "add", "-A")
    copy.run("git", "commit", "-q", "-m", "docs: a note")
    assert ran(copy.run("dvc", "repro", "--force", "--single-item", "export").stdout) == ["export"]
    after = {name: copy.md5(name) for name in tracked}
    assert after == before, copy.run("git", "diff").stdout[-3000:]
    assert copy.run("git", "status", "--porcelain").stdout == ""


@scenario(22, "the first PR on a team's own data cannot be judged (gates exit 2)")
def test_scenario_11_the_first_pr_on_a_teams_own_data_is_judged(sklearn_run, tmp_path):
    # Harness scenario 11 (tests/workflows/test_adopted.py): main's model was trained on the
    # demo data; the team's first PR points data.* at its own table, by params only. Its
    # PR must be judged (gates exit 0 or 1, the regression gate "not applicable" with its
    # reason), never "could not run" (exit 2), which leaves the PR without a verdict.
    copy = sklearn_run.clone_to(tmp_path / "own-data")
    copy.run("git", "add", "-A")
    copy.run("git", "commit", "-q", "-m", "trained on the demo data")
    copy.run("git", "checkout", "-q", "-b", "own-data")
    own = make_credit_frame(n=2000, seed=5).rename(columns={"income": "annual_income"})
    (copy.path / "data" / "external").mkdir(parents=True, exist_ok=True)
    own.to_csv(copy.path / "data" / "external" / "team.csv", index=False)
    raw = yaml.safe_load((copy.path / "params.yaml").read_text(encoding="utf-8"))
    columns = raw["data"]["schema"]["columns"]
    columns["annual_income"] = columns.pop("income")
    raw["data"].update(source="file", path="data/external/team.csv")
    (copy.path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    copy.run("dvc", "repro")
    gates = copy.run("python", "-m", "scripts.gates", "--against", "main", check=False)
    defect(gates.returncode == 2, gates.stderr[-1500:])
    assert gates.returncode in (0, 1), gates.stderr[-1500:]
    assert (copy.path / "reports" / "gates.json").is_file()
