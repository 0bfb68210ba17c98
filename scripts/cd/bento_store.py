"""Bentos: build and export one, name an archive, and the per-environment BentoML stores.

Each environment of the local driver has its own store (``<run dir>/<env>/bentoml``); the
archive ``dist/<name>-<version>.bento`` that ``make bento`` writes is what moves between
machines (``bentoml import``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

from scripts.cd.errors import DeployError


def bento_tag(archive: Path) -> str:
    """``name:version`` from an archive written by ``scripts.build_bento`` (name-version.bento).

    The Bento name (bentofile.yaml) has no ``-``; the version may.
    """
    name, sep, version = archive.name.removesuffix(".bento").partition("-")
    if archive.suffix != ".bento" or not sep or not name or not version:
        raise DeployError(f"{archive}: expected <name>-<version>.bento from `make bento`")
    return f"{name}:{version}"


DIGEST_LABEL = "content_digest"


def content_digest(root: Path = Path("."), bentofile: Path = Path("bentofile.yaml")) -> str:
    """What a Bento built here would serve, as a short digest: the model and the code.

    sha256 over the bentofile, every file it includes (the service, the shared pipeline
    code, the serving spec) and the ONNX model. Two commits with the same digest build
    Bentos that serve identically: a push that changes neither (a README edit) releases
    nothing.

    Raises:
        DeployError: When an included file or the model is missing (run ``make repro``).
    """
    spec = yaml.safe_load((root / bentofile).read_text(encoding="utf-8"))
    files = {bentofile, Path("models/model.onnx")}
    for pattern in spec.get("include", []):
        matched = sorted(root.glob(pattern))
        if not matched:
            raise DeployError(f"{bentofile}: include {pattern!r} matches no file under {root}")
        files.update(path.relative_to(root) for path in matched if path.is_file())
    digest = hashlib.sha256()
    for name in sorted(files, key=str):
        path = root / name
        if not path.is_file():
            raise DeployError(f"{path} not found: run `make repro` (or `dvc pull`) first")
        digest.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def archive_labels(archive: Path) -> dict[str, str]:
    """The labels of a Bento archive (its ``bento.yaml``), without importing it."""
    with tarfile.open(archive) as bundle:
        member = next((m for m in bundle.getmembers() if m.name.endswith("bento.yaml")), None)
        handle = bundle.extractfile(member) if member is not None else None
        if handle is None:
            raise DeployError(f"{archive}: no bento.yaml inside")
        manifest = yaml.safe_load(handle.read().decode("utf-8")) or {}
    return {str(key): str(value) for key, value in (manifest.get("labels") or {}).items()}


def bentofile_name(path: Path) -> str:
    """The Bento name declared in a bentofile."""
    with path.open(encoding="utf-8") as handle:
        return str(yaml.safe_load(handle)["name"])


def build(bentofile: Path, version: str, labels: dict[str, str], out_dir: Path) -> tuple[str, Path]:
    """``bentoml build`` the bentofile and export it to ``out_dir``; the tag and the archive.

    A rebuild of the same version replaces the earlier Bento (the model may differ).
    """
    import bentoml

    with contextlib.suppress(bentoml.exceptions.NotFound):
        bentoml.bentos.delete(f"{bentofile_name(bentofile)}:{version}")
    bento = bentoml.bentos.build_bentofile(str(bentofile), version=version, labels=labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{bento.tag.name}-{bento.tag.version}.bento"
    bentoml.bentos.export_bento(bento.tag, str(archive.resolve()))
    return str(bento.tag), archive


def bentoml_command() -> str:
    """The ``bentoml`` of this interpreter's environment (PATH may not include it)."""
    local = Path(sys.executable).parent / "bentoml"
    return str(local) if local.is_file() else "bentoml"


def store_env(store: Path) -> dict[str, str]:
    """Environment for bentoml commands against the store at ``store``."""
    return {**os.environ, "BENTOML_HOME": str(store), "BENTOML_DO_NOT_TRACK": "true"}


def bentoml(store: Path, *args: str) -> str:
    """``bentoml ARGS`` against a store; its stdout.

    Raises:
        DeployError: With bentoml's message when it fails.
    """
    result = subprocess.run(
        [bentoml_command(), *args],
        env=store_env(store),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"bentoml {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def known_bentos(store: Path) -> set[str]:
    """Tags in a store."""
    return {str(item["tag"]) for item in json.loads(bentoml(store, "list", "-o", "json") or "[]")}


def import_bento(store: Path, archive: Path) -> str:
    """Import an archive into a store (once); its tag."""
    if not archive.is_file():
        raise DeployError(f"--bento-file {archive}: no such file (download the release artifact)")
    tag = bento_tag(archive)
    if tag not in known_bentos(store):
        bentoml(store, "import", str(archive.resolve()))
    return tag


def docker_available() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def containerize(archive: Path, image: str, push: bool) -> None:
    """``bentoml containerize`` an archive as ``image`` in a throw-away store; push it.

    Raises:
        DeployError: Naming the command that failed.
    """
    tag = bento_tag(archive)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BENTOML_HOME": home}
        commands = [
            ["bentoml", "import", str(archive.resolve())],
            ["bentoml", "containerize", tag, "--image-tag", image],
        ]
        if push:
            commands.append(["docker", "push", image])
        for command in commands:
            print("image: " + " ".join(command), flush=True)
            if subprocess.run(command, env=env, check=False).returncode != 0:
                raise DeployError(f"{' '.join(command[:2])} failed")
