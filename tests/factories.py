"""Test data and parameters, built in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipeline.generate import Window, generate
from pipeline.params import Params, parse_params
from scripts.workspace import set_dotted

REPO_ROOT = Path(__file__).resolve().parents[1]


def raw_params() -> dict[str, Any]:
    """The repository's params.yaml as plain data, for tests to modify."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    return data


def make_params(**overrides: Any) -> Params:
    """The repository's params with dotted-key overrides, e.g. ``{"train.model": "torch"}``."""
    raw = raw_params()
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return parse_params(raw)


def make_credit_frame(n: int = 200, seed: int = 0, **window: Any) -> pd.DataFrame:
    """A synthetic credit table (the demo generator), valid under the repository's schema."""
    return generate(n, seed, Window(**window))
