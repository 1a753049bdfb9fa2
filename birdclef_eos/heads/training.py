"""Training one fold of a sequence head (paper section 4.2).

A WeightedRandomSampler draws each batch with fixed per-source fractions (focal recordings vs
labelled soundscape chunks); targets are multi-hot (primary 1, secondary ``secondary_weight``);
feature-level mixup mixes every block tensor and the targets with one lambda per batch; AdamW with
a per-step cosine schedule; early stopping on the validation macro ROC-AUC (stages/metric.py).
Seeded and deterministic on CPU: one torch.Generator per fold drives sampling and mixup, the global
seed drives initialisation and dropout.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import beta as beta_dist
from torch import nn
from torch.utils.data import WeightedRandomSampler
from tqdm import tqdm

from birdclef_eos.scoring.metric import MetricError, macro_auc


class TrainingError(ValueError):
    pass


@dataclass
class TrainConfig:
    """One head's training. The optimiser knobs have no defaults here: a stage passes params.yaml's
    (birdclef_eos/heads/config.py types them), a test or benchmark says what it uses."""
    epochs: int                   # at most this many epochs
    patience: int                 # stop after this many epochs without a better validation AUC
    min_delta: float              # a validation AUC must beat the best by more than this to count
    batch_size: int
    lr: float
    weight_decay: float
    mixup_alpha: float            # Beta(alpha, alpha) for the mixup lambda; 0 turns mixup off
    samples_per_epoch: int | None = None  # None (absent): the number of training rows
    mix_lr_scale: float | None = None     # learning-rate multiplier of the scalar-mix logits; None (absent): the
                                          # head has none (a scalar-mix head without it is an error)
    time_limit_s: float | None = None  # stop after the epoch that passes this (benchmarks only)

    @classmethod
    def from_mapping(cls, optim: dict) -> "TrainConfig":
        """From a mapping of the knobs above (params.yaml `train.optim`, `vit.optim`); the optimiser
        knobs must be given, samples_per_epoch and mix_lr_scale may be (else absent)."""
        required = ("epochs", "patience", "min_delta", "batch_size", "lr", "weight_decay", "mixup_alpha")
        missing = [k for k in required if k not in optim]
        if missing:
            raise TrainingError(f"optim: missing {missing}")
        return cls(**{k: optim[k] for k in required + ("samples_per_epoch", "mix_lr_scale") if k in optim})


def split_labels(cell: str) -> list[str]:
    return [s for s in str(cell).split(";") if s]


def targets_matrix(windows: pd.DataFrame, labels: list[str], secondary_weight: float) -> np.ndarray:
    """Multi-hot targets ``[N, K]``: 1 for ``labels`` (focal primary, soundscape chunk labels),
    ``secondary_weight`` for ``secondary_labels`` (never lowering a positive)."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.zeros((len(windows), len(labels)), dtype=np.float32)
    for column, value in (("secondary_labels", secondary_weight), ("labels", 1.0)):
        for row, cell in enumerate(windows[column].tolist()):
            for label in split_labels(cell):
                if label not in index:
                    raise TrainingError(f"windows.csv row {row}, column '{column}': unknown label "
                                        f"'{label}' (not in data/index/species.csv)")
                y[row, index[label]] = max(y[row, index[label]], value)
    return y


def source_weights(is_soundscape: np.ndarray, soundscape_fraction: float) -> np.ndarray:
    """Per-row sampling weights so that a batch holds ``soundscape_fraction`` soundscape rows on
    average and the rest focal rows, uniform within each source."""
    if not 0.0 <= soundscape_fraction <= 1.0:
        raise TrainingError(f"soundscape_fraction must be in [0, 1], got {soundscape_fraction}")
    is_soundscape = np.asarray(is_soundscape, dtype=bool)
    n_sc, n_focal = int(is_soundscape.sum()), int((~is_soundscape).sum())
    if soundscape_fraction > 0 and n_sc == 0:
        raise TrainingError("soundscape_fraction > 0 but there are no labelled soundscape rows to train on")
    if soundscape_fraction < 1 and n_focal == 0:
        raise TrainingError("soundscape_fraction < 1 but there are no focal rows to train on")
    w = np.zeros(len(is_soundscape), dtype=np.float64)
    if n_sc:
        w[is_soundscape] = soundscape_fraction / n_sc
    if n_focal:
        w[~is_soundscape] = (1.0 - soundscape_fraction) / n_focal
    return w


def make_sampler(weights: np.ndarray, num_samples: int, generator: torch.Generator) -> WeightedRandomSampler:
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples,
                                 replacement=True, generator=generator)


def mixup(tokens: list[torch.Tensor], targets: torch.Tensor, alpha: float, generator: torch.Generator):
    """Mix each row with a random partner: the same lambda for every block tensor and the targets.
    Returns (tokens, targets, lambda)."""
    if alpha <= 0:
        return tokens, targets, 1.0
    # drawn through the fold's generator (torch's Beta.sample would use the global RNG)
    lam = beta_draw(float(torch.rand(1, generator=generator)), alpha)
    perm = torch.randperm(len(targets), generator=generator)
    mixed = [lam * t + (1 - lam) * t[perm] for t in tokens]
    return mixed, lam * targets + (1 - lam) * targets[perm], lam


def beta_draw(u: float, alpha: float) -> float:
    """A Beta(alpha, alpha) draw from one uniform, by the inverse CDF."""
    return float(beta_dist.ppf(min(max(u, 1e-12), 1 - 1e-12), alpha, alpha))


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Weight decay on matrices only (not on biases, norms, embeddings, CLS, mix logits); the
    scalar-mix logits get a larger step: three scalars that otherwise barely leave uniform in a
    short run."""
    decay, plain, mix = [], [], []
    for name, p in model.named_parameters():
        (mix if name == "mix_logits" else decay if p.ndim >= 2 and "embedding" not in name
         and name != "cls" else plain).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": plain, "weight_decay": 0.0}]
    if mix:
        if config.mix_lr_scale is None:
            raise TrainingError("a scalar-mix head needs optim.mix_lr_scale (the mix logits' learning-rate multiplier)")
        groups.append({"params": mix, "weight_decay": 0.0, "lr": config.lr * config.mix_lr_scale})
    return groups


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def predict_logits(model: nn.Module, tokens: list[torch.Tensor], batch_size: int = 8192) -> torch.Tensor:
    model.eval()
    n = len(tokens[0])
    parts = [model([t[i:i + batch_size] for t in tokens]) for i in range(0, n, batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0)


def auc_or_nan(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC of hard targets (soft ones thresholded at 0.5); NaN when undefined."""
    if len(targets) == 0:
        return float("nan")
    try:
        return macro_auc(np.asarray(targets) > 0.5, scores)
    except MetricError:
        return float("nan")


def validation_auc(model: nn.Module, tokens: list[torch.Tensor], targets: np.ndarray) -> float:
    return auc_or_nan(targets, torch.sigmoid(predict_logits(model, tokens)).cpu().numpy())


def train_fold(model: nn.Module, tokens: list[torch.Tensor], targets: torch.Tensor, weights: np.ndarray,
               val_tokens: list[torch.Tensor], val_targets: np.ndarray, config: TrainConfig,
               seed: int, log=None, desc: str = "train") -> tuple[nn.Module, list[dict]]:
    """Train ``model`` in place and return (the best-validation copy, per-epoch history).
    Each history record holds the epoch's loss, validation AUC and seconds, the epoch whose model
    is kept so far (``best_epoch``) and why training stopped there (``stop``: "early", "time" or
    None). ``log(epoch, record)`` is called after each epoch when given."""
    generator = torch.Generator().manual_seed(seed)
    num_samples = config.samples_per_epoch or len(targets)
    steps = math.ceil(num_samples / config.batch_size)
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    scheduler = cosine_schedule(optimizer, steps * config.epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_auc, best_epoch, since_best, history = copy.deepcopy(model), -math.inf, 0, 0, []
    bar = tqdm(range(config.epochs), desc=desc, leave=False)
    started = time.perf_counter()
    for epoch in bar:
        model.train()
        order = torch.as_tensor(list(make_sampler(weights, num_samples, generator)))
        total = 0.0
        for start in range(0, num_samples, config.batch_size):
            idx = order[start:start + config.batch_size]
            batch, y, _ = mixup([t[idx] for t in tokens], targets[idx], config.mixup_alpha, generator)
            loss = loss_fn(model(batch), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        auc = validation_auc(model, val_tokens, val_targets)
        # NaN (no defined AUC) never improves: the first epoch's model is then kept
        improved = auc > best_auc + config.min_delta or (epoch == 0 and math.isnan(auc))
        if improved:
            best, best_auc, best_epoch, since_best = copy.deepcopy(model), auc, epoch, 0
        else:
            since_best += 1
        seconds = time.perf_counter() - started
        out_of_time = config.time_limit_s is not None and seconds > config.time_limit_s
        record = {"epoch": epoch, "loss": total / num_samples, "val_macro_auc": auc, "seconds": seconds,
                  "best_epoch": best_epoch,
                  "stop": "early" if since_best >= config.patience else "time" if out_of_time else None}
        history.append(record)
        if log:
            log(epoch, record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", auc=f"{auc:.4f}")
        if record["stop"]:
            break
    return best.eval(), history
