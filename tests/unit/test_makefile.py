"""`make install` checks the environment it would reuse (a cache restored on another machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.dev.workspace import PROJECT_ROOT


def dry_install(venv: Path | str) -> str:
    result = subprocess.run(
        ["make", "-n", "install", f"VENV={venv}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_a_venv_whose_interpreter_link_is_broken_is_rebuilt(tmp_path: Path) -> None:
    # What a .venv saved on a GitHub-hosted runner looks like on a self-hosted one.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /opt/hostedtoolcache/Python/3.11.14/x64/bin\n")
    (venv / "bin" / "python").symlink_to("/opt/hostedtoolcache/Python/3.11.14/x64/bin/python3")
    planned = dry_install(venv)
    assert "does not work on this machine" in planned
    assert f"rm -rf {venv}" in planned


def test_the_working_environment_is_left_alone() -> None:
    planned = dry_install(sys.prefix)
    assert "does not work on this machine" not in planned
    assert "rm -rf" not in planned
