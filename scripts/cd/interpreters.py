"""Interpreters for what the deploy host runs: one virtualenv per requirement set.

Jobs install into their own venv (``make install`` updates it in place, before any gate), so
no service may import from it. A variant runs from a virtualenv built from its Bento's own
requirements (``env/python/requirements.txt`` and the constraints the Bento carries, see
``bentofile.yaml``), cached under ``<run root>/interpreters/<digest>``: the digest of those
files and of the Python version. A rollback to an old champion gets the packages it was
built and tested with; a merged dependency change reaches production only with the Bento
that declares it. The same holds for the supervisor (:func:`for_requirements` with its pin).

Built with uv against its cache (0.6 s here; ``docs/benchmarks.md``); a half-built
environment is never used: it counts only once its completion marker is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.cd.errors import DeployError

COMPLETE = ".gitops-ml-complete"
# Inside a Bento: its requirements (BentoML writes them) and the constraints it carries.
BENTO_REQUIREMENTS = ("env/python/requirements.txt", "src/requirements/serving.txt")


def root(run_root: Path) -> Path:
    """Where the interpreters of a host live (shared by its environments)."""
    return run_root / "interpreters"


def digest(texts: list[str]) -> str:
    """The cache key: the requirement texts and this Python's version."""
    hasher = hashlib.sha256(sys.version.encode())
    for text in texts:
        hasher.update(b"\0" + text.encode())
    return hasher.hexdigest()[:16]


def bento_directory(store: Path, tag: str) -> Path:
    """A Bento's directory in a BentoML store (``name:version``)."""
    name, _, version = tag.partition(":")
    return store / "bentos" / name / version


def for_bento(run_root: Path, store: Path, tag: str) -> Path:
    """The ``bin`` directory of the interpreter built from the Bento ``tag``'s requirements.

    Raises:
        DeployError: When the Bento declares no requirements, or they do not install.
    """
    directory = bento_directory(store, tag)
    requirements = directory / BENTO_REQUIREMENTS[0]
    if not requirements.is_file():
        raise DeployError(f"{tag}: {requirements} is missing (the Bento declares no packages)")
    constraints = directory / BENTO_REQUIREMENTS[1]
    arguments = ["-r", str(requirements)]
    if constraints.is_file():
        arguments += ["-c", str(constraints)]
    texts = [requirements.read_text(encoding="utf-8")]
    texts += [constraints.read_text(encoding="utf-8")] if constraints.is_file() else []
    return ensure(root(run_root) / digest(texts), arguments, what=tag)


def for_requirements(run_root: Path, name: str, requirements: list[str]) -> Path:
    """The ``bin`` directory of an interpreter with exactly ``requirements`` (pins)."""
    return ensure(root(run_root) / f"{name}-{digest(requirements)}", list(requirements), what=name)


def ensure(venv: Path, install: list[str], what: str) -> Path:
    """``venv`` built once with ``uv pip install INSTALL``; its ``bin`` directory.

    Raises:
        DeployError: When uv is missing or the install fails (its output included).
    """
    marker = venv / COMPLETE
    if marker.is_file():
        return venv / "bin"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another apply may be building the same one
        if marker.is_file():
            return venv / "bin"
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        uv = uv_command()
        base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        for command in (
            [uv, "venv", "--quiet", "--python", base, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *install],
        ):
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise DeployError(
                    f"{what}: building its interpreter {venv} failed: "
                    f"{' '.join(command)}: {result.stderr.strip()[-800:]}"
                )
        marker.write_text(" ".join(install) + "\n", encoding="utf-8")
        print(f"deploy: built the interpreter of {what} in {venv}")
    return venv / "bin"


def uv_command() -> str:
    """uv: beside this interpreter (``make install`` puts it there), else on PATH."""
    local = Path(sys.executable).parent / "uv"
    if local.is_file():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise DeployError("uv is needed to build the services' interpreters: pip install uv")
    return found
