"""The serving benchmark's baseline: the course's design, a FastAPI app calling the pipeline.

``uvicorn scripts.dev.baseline_server:app`` loads ``models/model.joblib`` (the scikit-learn
Pipeline) with joblib at start-up and answers ``POST /predict`` with the same JSON body
as the Bento's ``/predict``, one ``predict_proba`` on a DataFrame per request. Used only
by ``scripts.dev.bench_serving``; it is not a serving path of the template (it unpickles).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI

MODEL_PATH = Path(os.environ.get("GITOPS_ML_BASELINE_MODEL", "models/model.joblib"))
app = FastAPI(title="baseline: FastAPI + joblib pipeline")
_model: dict[str, Any] = {}


@app.on_event("startup")
def _load() -> None:
    _model["pipeline"] = joblib.load(MODEL_PATH)


@app.post("/predict")
def predict(payload: dict[str, list[dict[str, Any]]]) -> list[dict[str, float]]:
    """Probability of default per record."""
    pipeline = _model["pipeline"]
    frame = pd.DataFrame.from_records(payload["records"])[list(pipeline.feature_names_in_)]
    probability = pipeline.predict_proba(frame)[:, 1]
    return [{"probability": float(p)} for p in probability]
