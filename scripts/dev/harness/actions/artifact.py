"""upload-artifact / download-artifact stand-ins: a folder per artifact under $GITOPS_ML_ARTIFACTS.

Upload keeps paths relative to the least common ancestor of the matched files, as
actions/upload-artifact v4 does, so a download restores the same layout.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path


def upload(store: Path) -> None:
    """Copy the matched files to the artifact's folder; output its file:// URL."""
    name = os.environ["NAME"]
    patterns = [line.strip() for line in os.environ["PATHS"].splitlines() if line.strip()]
    files: list[Path] = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, recursive=True)):
            path = Path(match)
            files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not files:
        message = f"no files found for {patterns}"
        if os.environ.get("IF_NO_FILES") == "error":
            print(f"::error::{message}")
            sys.exit(1)
        print(f"::warning::{message}")
        return
    absolute = [f.resolve() for f in files]
    root = Path(os.path.commonpath([str(f.parent) for f in absolute]))
    target = store / name
    shutil.rmtree(target, ignore_errors=True)
    for file in absolute:
        destination = target / file.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)
    print(f"upload-artifact stand-in: {len(absolute)} files -> {target}")
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
        output.write(f"url=file://{target}\n")


def download(store: Path) -> None:
    """Copy an artifact's folder to the destination."""
    source = store / os.environ["NAME"]
    if not source.is_dir():
        print(f"::error::artifact {source.name} not found in {store}")
        sys.exit(1)
    shutil.copytree(source, Path(os.environ["DESTINATION"]), dirs_exist_ok=True)
    print(f"download-artifact stand-in: {source} -> {os.environ['DESTINATION']}")


if __name__ == "__main__":
    store = Path(os.environ["GITOPS_ML_ARTIFACTS"])
    store.mkdir(parents=True, exist_ok=True)
    {"upload": upload, "download": download}[sys.argv[1]](store)
