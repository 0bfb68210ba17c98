"""Fixtures shared by the integration tests (helpers live in tests/helpers.py).

The expensive setups — a `dvc repro` of the small project, a `bentoml build` — run once per
session, in templates no test touches: a session fixture hands out a function that copies
its template (:meth:`tests.helpers.Repo.clone_to`, with its DVC cache, remote and BentoML
store), so each module works in a copy of its own and nothing one module does reaches
another.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo, make_repo

CopyOf = Callable[[Path], Repo]


@pytest.fixture(scope="session")
def trained_copy(tmp_path_factory: pytest.TempPathFactory) -> CopyOf:
    """Copies (to a given path) of a project where `dvc repro` has run once, small params."""
    template = make_repo(tmp_path_factory.mktemp("trained") / "repo")
    template.run("dvc", "repro")
    return template.clone_to


@pytest.fixture(scope="session")
def good_bento_copy(tmp_path_factory: pytest.TempPathFactory, trained_copy: CopyOf) -> CopyOf:
    """Copies of a trained project that built the Bento ``credit_risk:good`` (threshold 0.5).

    Its archive is ``dist/credit_risk-good.bento`` in every copy.
    """
    template = trained_copy(tmp_path_factory.mktemp("good-bento") / "repo")
    template.run(sys.executable, "-m", "scripts.build_bento", "--version", "good")
    return template.clone_to


@pytest.fixture(scope="module")
def sklearn_run(tmp_path_factory: pytest.TempPathFactory, trained_copy: CopyOf) -> Repo:
    """A copy where `dvc repro` has run once with the scikit-learn model (the module's own)."""
    return trained_copy(tmp_path_factory.mktemp("sklearn") / "repo")
