"""Build the Bento and export it to an archive: ``python -m scripts.build_bento`` (``make bento``).

1. Makes sure the pinned model is in the local BentoML store (``pipeline.export
   --register-only``: a CI job that got ``models/`` with ``dvc pull`` has an empty store).
2. ``bentoml build`` from bentofile.yaml, version = git short sha, labels = git sha, build
   time and model tag. The commit lives here, not in the DVC-tracked model files, so
   those stay byte-identical whichever commit reproduces them.
3. ``bentoml export`` to ``dist/<name>-<version>.bento`` — the artifact CI uploads and that
   ``bentoml import`` restores elsewhere. ``bentoml containerize`` needs a Docker engine and
   runs on GitHub-hosted runners only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.exit_codes import ExitCode
from pipeline.export import register
from pipeline.io import read_json
from scripts.cd.bento_store import DIGEST_LABEL, build, content_digest


def git_short_sha() -> str:
    """The short sha of HEAD (the Bento's version); ``nogit`` outside git."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nogit"


def main(argv: Sequence[str] | None = None) -> int:
    """Register the model, build and export the Bento; print the tag and archive path."""
    parser = argparse.ArgumentParser(prog="python -m scripts.build_bento", description=__doc__)
    parser.add_argument("--onnx", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--spec", type=Path, default=Path("models/serving.json"))
    parser.add_argument("--bentofile", type=Path, default=Path("bentofile.yaml"))
    parser.add_argument("--out-dir", type=Path, default=Path("dist"))
    parser.add_argument("--version", default=None, help="Bento version (default: git short sha)")
    args = parser.parse_args(argv)
    for path in (args.onnx, args.spec):
        if not path.is_file():
            print(f"build_bento: {path} not found; run `dvc repro` or `dvc pull`", file=sys.stderr)
            return ExitCode.NOT_EVALUATED
    model_tag = register(args.onnx, args.spec)
    git_sha = git_short_sha()
    labels = {
        "git_sha": git_sha,
        "built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ"),
        "model_tag": model_tag.replace(":", "_"),
        # What it serves: a later commit with the same digest releases nothing new.
        DIGEST_LABEL: content_digest(Path("."), args.bentofile),
    }
    tag, archive = build(args.bentofile, args.version or git_sha, labels, args.out_dir)
    print(f"bento {tag} (model {model_tag}) -> {archive}")
    spec = read_json(args.spec)
    print(f"model metrics: roc_auc={spec['metrics']['model']['roc_auc']}")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
