"""The torch model family: a tabular MLP behind a scikit-learn estimator interface.

The estimator sits after the shared preprocessor in a scikit-learn ``Pipeline``, so
evaluation, export and serving treat both families alike. Training:

* ``device: auto`` takes CUDA when present; AMP (float16 autocast + gradient scaling)
  runs on CUDA only;
* seeds are set once (:func:`pipeline.reproducibility.set_seed`), the DataLoader has a
  seeded generator and worker seeding, so CPU runs repeat exactly;
* under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
  DistributedDataParallel, each rank reads its shard through a DistributedSampler
  (``set_epoch`` every epoch), NCCL on GPUs and gloo on CPU;
* one progress bar per epoch (rank 0), early stopping on validation loss, and the
  weights of the best epoch are kept.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm

from pipeline.params import TorchParams
from pipeline.reproducibility import seed_worker, set_seed


class MLP(nn.Module):
    """Fully connected layers with ReLU and dropout, ending in one logit."""

    def __init__(self, n_inputs: int, hidden_sizes: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logit of default, shape (rows,)."""
        logits: torch.Tensor = self.layers(features)
        return logits.squeeze(-1)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a torchrun job (rank 0 of 1 outside one)."""

    rank: int
    local_rank: int
    world_size: int

    @property
    def is_distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and saves."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        """Read torchrun's RANK, LOCAL_RANK and WORLD_SIZE."""
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )


def resolve_device(requested: str, context: DistributedContext) -> torch.device:
    """Pick the training device.

    Args:
        requested: ``auto``, ``cpu`` or ``cuda``.
        context: The torchrun context (each rank gets the GPU of its local rank).

    Returns:
        The device.

    Raises:
        ValueError: When CUDA is requested but absent, or there are fewer GPUs than ranks.
    """
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.torch.device: 'cuda' requested but no CUDA device is available")
    if context.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"train.torch.gpus: rank {context.local_rank} needs a GPU, "
            f"only {torch.cuda.device_count()} present"
        )
    return torch.device("cuda", context.local_rank)


def wrap_distributed(
    module: nn.Module, device: torch.device, context: DistributedContext
) -> nn.Module:
    """Under torchrun with several processes, join the process group and wrap in DDP.

    NCCL on CUDA, gloo on CPU; a single process gets the module back unchanged.
    """
    if not context.is_distributed:
        return module
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )


def make_loader(
    X: np.ndarray,
    y: np.ndarray,
    cfg: TorchParams,
    seed: int,
    context: DistributedContext,
    device: torch.device,
) -> tuple[
    DataLoader[tuple[torch.Tensor, ...]], DistributedSampler[tuple[torch.Tensor, ...]] | None
]:
    """The training batches: shuffled with ``seed``, one shard per rank under DDP.

    Returns:
        The loader and, under DDP, its sampler (which needs ``set_epoch`` every epoch).
    """
    dataset = TensorDataset(
        torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    )
    sampler: DistributedSampler[tuple[torch.Tensor, ...]] | None = (
        DistributedSampler(dataset, shuffle=True, seed=seed) if context.is_distributed else None
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )
    return loader, sampler


@dataclass
class EpochRunner:
    """One pass over the training batches: forward, loss, backward and step (AMP on CUDA)."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    context: DistributedContext
    loss_fn: nn.Module = field(default_factory=nn.BCEWithLogitsLoss)

    def run(self, loader: DataLoader[tuple[torch.Tensor, ...]], description: str) -> float:
        """Train for one epoch; the mean training loss over every rank's rows."""
        self.network.train()
        total, seen = 0.0, 0
        bar = tqdm(
            loader,
            desc=description,
            disable=not self.context.is_main,
            leave=False,
            mininterval=1.0,
        )
        for features, labels in bar:
            features = features.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(
                device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp
            ):
                loss = self.loss_fn(self.network(features), labels)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
        if self.context.is_distributed:
            # Each rank saw its own shard: report the loss over all of them.
            sums = torch.tensor([total, float(seen)], device=self.device)
            torch.distributed.all_reduce(sums)
            total, seen = float(sums[0]), int(sums[1])
        return total / seen


class TabularMLPClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn is untyped
    """Binary classifier trained with torch; ``predict_proba`` runs on CPU.

    Args:
        config: The ``train.torch`` section of params.yaml.
        seed: Seed for weights, shuffling and dropout.
    """

    def __init__(self, config: TorchParams, seed: int = 0) -> None:
        self.config = config
        self.seed = seed

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> TabularMLPClassifier:
        """Train; with ``eval_set`` keep the best epoch and stop early on validation loss.

        Args:
            X: Preprocessed features, shape (rows, inputs).
            y: Labels 0/1.
            eval_set: Preprocessed validation features and labels.

        Returns:
            The fitted estimator.
        """
        cfg = self.config
        context = DistributedContext.from_env()
        set_seed(self.seed)
        device = resolve_device(cfg.device, context)
        use_amp = cfg.amp and device.type == "cuda"
        module = MLP(X.shape[1], cfg.hidden_sizes, cfg.dropout).to(device)
        network = wrap_distributed(module, device, context)
        loader, sampler = make_loader(X, y, cfg, self.seed, context, device)
        epoch_runner = EpochRunner(
            network,
            torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            torch.amp.GradScaler("cuda", enabled=use_amp),
            device,
            use_amp,
            context,
        )
        history: list[dict[str, float]] = []
        best_loss, best_state, stale = float("inf"), copy.deepcopy(module.state_dict()), 0
        for epoch in range(cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            train_loss = epoch_runner.run(loader, f"epoch {epoch + 1}/{cfg.epochs}")
            record = {"epoch": float(epoch + 1), "train_loss": train_loss}
            if eval_set is not None:
                # Every rank scores the full validation set, so all take the same
                # early-stopping decision without communicating.
                record["val_loss"] = self._loss(module, eval_set, device)
                if record["val_loss"] < best_loss - 1e-6:
                    best_loss, best_state, stale = (
                        record["val_loss"],
                        copy.deepcopy(module.state_dict()),
                        0,
                    )
                else:
                    stale += 1
            history.append(record)
            if context.is_main:
                shown = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
                print(f"epoch {epoch + 1}/{cfg.epochs}: {shown}", flush=True)
            if eval_set is not None and cfg.patience and stale >= cfg.patience:
                if context.is_main:
                    print(f"early stop: no val_loss gain for {stale} epochs", flush=True)
                break
        if eval_set is None:
            best_state = module.state_dict()
        module.load_state_dict(best_state)
        self.module_ = module.to("cpu").eval()
        self.classes_ = np.array([0, 1])
        self.history_ = history
        self.n_features_in_ = X.shape[1]
        self.world_size_ = context.world_size
        return self

    @staticmethod
    def _loss(
        module: nn.Module, data: tuple[np.ndarray, np.ndarray], device: torch.device
    ) -> float:
        module.eval()
        with torch.no_grad():
            features = torch.as_tensor(data[0], dtype=torch.float32, device=device)
            labels = torch.as_tensor(data[1], dtype=torch.float32, device=device)
            return float(nn.functional.binary_cross_entropy_with_logits(module(features), labels))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of class 0 and 1, shape (rows, 2).

        Args:
            X: Preprocessed features.

        Returns:
            The probabilities (float64).
        """
        with torch.no_grad():
            logits = self.module_(torch.as_tensor(np.asarray(X), dtype=torch.float32))
            positive = torch.sigmoid(logits).double().numpy()
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class with the higher probability.

        Args:
            X: Preprocessed features.

        Returns:
            Labels 0/1.
        """
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)
