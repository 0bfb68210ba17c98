"""The services' interpreters: one virtualenv per requirement set, built once, never the jobs'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.cd import interpreters
from scripts.cd.errors import DeployError

PIN = "pyyaml==6.0.4"  # in requirements/constraints.txt: uv's cache has it after make install


def fake_bento(store: Path, tag: str, requirements: str, constraints: str | None) -> None:
    directory = interpreters.bento_directory(store, tag)
    (directory / "env" / "python").mkdir(parents=True)
    (directory / "env" / "python" / "requirements.txt").write_text(requirements)
    if constraints is not None:
        (directory / "src" / "requirements").mkdir(parents=True)
        (directory / "src" / "requirements" / "serving.txt").write_text(constraints)


def prefix(bin_directory: Path) -> str:
    code = "import sys, yaml; print(sys.prefix, yaml.__version__)"
    result = subprocess.run(
        [str(bin_directory / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_digest_follows_the_requirement_texts_only() -> None:
    assert interpreters.digest([PIN]) == interpreters.digest([PIN])
    assert interpreters.digest([PIN]) != interpreters.digest(["pyyaml==6.0.3"])
    assert interpreters.digest([PIN, ""]) != interpreters.digest([PIN])
    assert len(interpreters.digest([PIN])) == 16


def test_a_bento_runs_from_its_own_interpreter_built_once(tmp_path: Path) -> None:
    store, run_root = tmp_path / "store", tmp_path / "run"
    fake_bento(store, "credit_risk:one", f"{PIN}\n", f"{PIN}\n")
    fake_bento(store, "credit_risk:same", f"{PIN}\n", f"{PIN}\n")
    fake_bento(store, "credit_risk:other", "pyyaml\n", f"{PIN}\n")
    first = interpreters.for_bento(run_root, store, "credit_risk:one")
    assert first.parent.parent == run_root / "interpreters"
    assert prefix(first) == f"{first.parent} 6.0.4"
    assert not str(first).startswith(sys.prefix)  # never the venv jobs install into
    marker = first.parent / interpreters.COMPLETE
    built = marker.stat().st_mtime_ns
    # Same requirements: the same interpreter, not rebuilt.
    assert interpreters.for_bento(run_root, store, "credit_risk:same") == first
    assert marker.stat().st_mtime_ns == built
    # Other requirements: another one; the first is untouched.
    other = interpreters.for_bento(run_root, store, "credit_risk:other")
    assert other != first
    assert prefix(other) == f"{other.parent} 6.0.4"
    assert marker.stat().st_mtime_ns == built


def test_a_half_built_interpreter_is_rebuilt_and_a_failed_one_removed(tmp_path: Path) -> None:
    store, run_root = tmp_path / "store", tmp_path / "run"
    fake_bento(store, "credit_risk:one", f"{PIN}\n", None)
    venv = run_root / "interpreters" / interpreters.digest([f"{PIN}\n"])
    (venv / "bin").mkdir(parents=True)  # an interrupted build: no completion marker
    assert interpreters.for_bento(run_root, store, "credit_risk:one") == venv / "bin"
    assert prefix(venv / "bin") == f"{venv} 6.0.4"

    fake_bento(store, "credit_risk:bad", "gitops-ml-no-such-package==0.0.0\n", None)
    with pytest.raises(DeployError, match=r"credit_risk:bad: building its interpreter .* failed"):
        interpreters.for_bento(run_root, store, "credit_risk:bad")
    bad = run_root / "interpreters" / interpreters.digest(["gitops-ml-no-such-package==0.0.0\n"])
    assert not bad.exists()


def test_a_bento_without_requirements_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"credit_risk:none: .*requirements.txt is missing"):
        interpreters.for_bento(tmp_path / "run", tmp_path / "store", "credit_risk:none")


def pins(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))
    return {name.lower().replace("_", "-"): version for name, version in found.items()}


def test_the_bentos_serving_closure_agrees_with_the_pins_and_the_bentofile() -> None:
    """requirements/serving.txt (what a variant's interpreter installs) is ``make lock``'s.

    Every pin is the one of requirements/constraints.txt, and every package the bentofile
    declares is pinned there at its version: a stale file fails here, not on a deploy host.
    """
    import yaml

    from tests.helpers import REPO_ROOT

    serving = pins(REPO_ROOT / "requirements" / "serving.txt")
    constraints = pins(REPO_ROOT / "requirements" / "constraints.txt")
    assert {name: constraints.get(name) for name in serving} == serving
    spec = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
    declared = dict(package.split("==", 1) for package in spec["python"]["packages"])
    assert {name: serving.get(name) for name in declared} == declared
    assert "requirements/serving.txt" in spec["include"]
