"""Seeding, after the course's ``set_seed``: one call seeds Python, NumPy and torch."""

from __future__ import annotations

import os
import random

import numpy as np


def set_seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed every random generator the training code uses.

    Args:
        seed: The seed.
        deterministic: Also make torch pick deterministic kernels (slower on GPU,
            required for runs that repeat to the last digit).
    """
    import torch  # torch is only needed by the torch model family

    random.seed(seed)
    # Legacy global state, seeded for third-party code that still draws from it.
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds every CUDA device
    # Read by cuBLAS when CUDA initialises; without it deterministic GEMMs raise.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in a DataLoader worker from torch's per-worker seed.

    Args:
        worker_id: Index of the worker (unused: torch already derives a distinct seed).
    """
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002  # see set_seed
    random.seed(worker_seed)
