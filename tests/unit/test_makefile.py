"""`make install` checks the environment it would reuse (a cache restored on another machine)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from scripts.dev.workspace import PROJECT_ROOT


def install(checkout: Path, venv: Path | str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *flags, "install", f"VENV={venv}"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )


def broken_venv(path: Path) -> Path:
    """What a .venv saved on a GitHub-hosted runner looks like on a self-hosted one."""
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text("home = /opt/hostedtoolcache/Python/3.11.14/x64/bin\n")
    (path / "bin" / "python").symlink_to("/opt/hostedtoolcache/Python/3.11.14/x64/bin/python3")
    return path


def test_a_broken_venv_of_the_checkout_is_rebuilt(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    shutil.copytree(PROJECT_ROOT / "requirements", tmp_path / "requirements")
    venv = broken_venv(tmp_path / ".venv")
    planned = install(tmp_path, venv, "-n")
    assert planned.returncode == 0, planned.stderr
    assert "does not work on this machine" in planned.stdout
    assert f"rm -rf {venv}" in planned.stdout


def test_a_broken_venv_from_elsewhere_is_reported_never_deleted(tmp_path: Path) -> None:
    venv = broken_venv(tmp_path / "runner-venv")
    result = install(PROJECT_ROOT, venv)
    assert result.returncode != 0
    assert "it is not this checkout's: fix or remove it" in result.stderr
    assert (venv / "pyvenv.cfg").is_file()


def test_the_working_environment_is_left_alone() -> None:
    planned = install(PROJECT_ROOT, sys.prefix, "-n")
    assert "does not work on this machine" not in planned.stdout
    assert "rm -rf" not in planned.stdout
