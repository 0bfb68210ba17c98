"""The actions/cache stand-in: GitHub's key semantics, and a save at the end of the job.

Restore (actions/cache v4 ``src/restoreImpl.ts``): the primary ``key`` if an entry has it
exactly (``cache-hit=true``), else the newest entry whose key starts with one of
``restore-keys``, tried in order (``cache-hit=false``), else nothing. The store is shared by
every job and run of the sandbox (one scope: GitHub's per-branch scopes with the default
branch as fallback are not modelled).

Save: GitHub saves in the action's post step, at the end of a successful job, under the
primary key, unless that key was an exact hit; entries are immutable. A composite action
has no post step and act deletes the workspace when the job ends, so on a miss each path
becomes a link to a staging folder outside the workspace; what the job leaves there is
moved into the store under the key by the harness when the job succeeds
(``scripts.dev.harness.runner.save_caches``), from the request this step writes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path


def lines(value: str) -> list[str]:
    """A multi-line input as a list of its non-empty lines."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def find(store: Path, key: str, restore_keys: list[str]) -> tuple[Path | None, bool]:
    """The entry to restore and whether it is an exact hit."""
    entries = {
        json.loads((entry / "meta.json").read_text(encoding="utf-8"))["key"]: entry
        for entry in store.glob("*")
        if (entry / "meta.json").is_file()
    }
    if key in entries:
        return entries[key], True
    for prefix in restore_keys:
        candidates = [entry for name, entry in entries.items() if name.startswith(prefix)]
        if candidates:
            return max(candidates, key=lambda e: (e / "meta.json").stat().st_mtime), False
    return None, False


def main() -> None:
    """Restore what matches; stage the paths for a save at the end of the job on a miss."""
    store = Path(os.environ["GITOPS_ML_CACHE_STORE"])
    store.mkdir(parents=True, exist_ok=True)
    key = os.environ["KEY"]
    paths = lines(os.environ.get("PATHS", ""))
    entry, exact = find(store, key, lines(os.environ.get("RESTORE_KEYS", "")))
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())
    staging = store.parent / "cache-staging" / uuid.uuid4().hex
    for index, name in enumerate(paths):
        target = (workspace / name).resolve() if not Path(name).is_absolute() else Path(name)
        source = entry / "paths" / str(index) if entry else None
        if exact:
            if source is not None and source.exists():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target, symlinks=True)
            continue
        stage = staging / str(index)
        if source is not None and source.exists():
            shutil.copytree(source, stage, symlinks=True)
        else:
            stage.mkdir(parents=True)
        if target.exists() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(stage, target_is_directory=True)
    if not exact:
        requests = store.parent / "cache-requests"
        requests.mkdir(exist_ok=True)
        request = {
            "key": key,
            "staging": str(staging),
            "job": os.environ.get("GITHUB_JOB", ""),
            "tracking": os.environ.get("RUNNER_TRACKING_ID", ""),
            "at": time.time(),
        }
        (requests / f"{uuid.uuid4().hex}.json").write_text(json.dumps(request), encoding="utf-8")
    found = "exact" if exact else ("restore-key" if entry else "none")
    print(f"cache stand-in: {key}: {found} match{'' if entry else ' (nothing restored)'}")
    matched = json.loads((entry / "meta.json").read_text())["key"] if entry else ""
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
        output.write(f"cache-hit={'true' if exact else 'false'}\n")
        output.write(f"cache-matched-key={matched}\n")


if __name__ == "__main__":
    main()
