"""Fixtures shared by the integration tests (helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.helpers import Repo, make_repo


@pytest.fixture(scope="module")
def sklearn_run(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A copy where `dvc repro` has run once with the scikit-learn model."""
    repo = make_repo(tmp_path_factory.mktemp("sklearn") / "repo")
    repo.run("dvc", "repro")
    return repo
