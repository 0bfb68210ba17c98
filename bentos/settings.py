"""The service's runtime settings, read once from the environment (no I/O beyond that)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "models" / "serving.json"


def _positive_int(name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ServiceSettings:
    """How one ``bentoml serve`` process of the service runs.

    Attributes:
        serving_spec: ``GITOPS_ML_SERVING_SPEC``: the serving spec the export stage wrote
            (default ``models/serving.json`` next to the package).
        workers: ``GITOPS_ML_WORKERS``: BentoML worker processes (set it to the CPU count).
        threads: ``GITOPS_ML_THREADS``: ONNX Runtime threads per worker (default: the CPUs
            divided among the workers).
        variant: ``GITOPS_ML_VARIANT``: ``champion`` or ``challenger``, a label on every
            metric and log line.
        log_dir: ``GITOPS_ML_LOG_DIR``: where ``bentoml.monitor`` writes prediction logs.
        access_log: ``GITOPS_ML_ACCESS_LOG=1`` turns per-request access lines on.
    """

    serving_spec: Path = DEFAULT_SPEC
    workers: int = 1
    threads: int | None = None
    variant: str = "champion"
    log_dir: str = "logs/monitoring"
    access_log: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings from ``environ`` (default: this process's environment).

        Raises:
            ValueError: Naming the variable, the rule and the value.
        """
        env = os.environ if environ is None else environ
        threads = env.get("GITOPS_ML_THREADS")
        return cls(
            serving_spec=Path(env.get("GITOPS_ML_SERVING_SPEC") or DEFAULT_SPEC),
            workers=_positive_int("GITOPS_ML_WORKERS", env.get("GITOPS_ML_WORKERS") or "1"),
            threads=_positive_int("GITOPS_ML_THREADS", threads) if threads else None,
            variant=env.get("GITOPS_ML_VARIANT") or "champion",
            log_dir=env.get("GITOPS_ML_LOG_DIR") or "logs/monitoring",
            access_log=env.get("GITOPS_ML_ACCESS_LOG", "0") == "1",
        )

    def onnx_threads(self, cpus: int) -> int:
        """ONNX Runtime threads per worker: the setting, else the CPUs shared by the workers."""
        return self.threads or max(1, cpus // self.workers)
