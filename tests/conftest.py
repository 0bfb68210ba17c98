"""Session-wide test settings."""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Keep BentoML's store and telemetry away from the user's home.

    Set before any test imports bentoml, which reads BENTOML_HOME once.
    """
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="gitops-ml-bentoml-")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
