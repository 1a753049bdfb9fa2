"""The distilled SED CNN of the baseline chain, trained from scratch.

An EfficientNet-B0-shaped net over a standardised log-mel [B, 1, n_mels, frames]: a stride-2 stem
conv, then stages of MBConv blocks (1x1 expand, depthwise kxk, squeeze-excite, 1x1 project, residual
where shapes allow), a 1x1 head conv; the frequency axis is averaged out, leaving [B, C, T'] frames.
Two outputs, as the chain's SED: ``clip`` (attention pooling over frames) and ``frame`` (per-frame
logits); score = 0.5 sigmoid(clip) + 0.5 max_t sigmoid(frame). Distillation: a Linear of the pooled
features regresses the backbone's final embedding (MSE), beside BCE on the labels.
No pretrained weights: widths, depth and input size are the params that size it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SEDConfig:
    n_classes: int
    d_distill: int = 0                          # backbone embedding width (0: no distillation head)
    stem: int = 16
    widths: list = field(default_factory=lambda: [16, 24, 40, 80])
    depths: list = field(default_factory=lambda: [1, 1, 1, 1])
    strides: list = field(default_factory=lambda: [1, 2, 2, 2])
    expand: int = 4
    head: int = 256
    dropout: float = 0.2

    def as_dict(self) -> dict:
        return asdict(self)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.SiLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, max(1, cin // 4), 1), nn.SiLU(),
                                nn.Conv2d(max(1, cin // 4), mid, 1), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = self.body(x)
        h = self.project(h * self.se(h))
        return x + h if self.residual else h


class SED(nn.Module):
    """mel [B, n_mels, frames] -> {"clip": [B, K], "frame": [B, T', K], "distill": [B, E] or None}."""

    def __init__(self, config: SEDConfig):
        super().__init__()
        c = self.config = config
        layers = [nn.Conv2d(1, c.stem, 3, 2, 1, bias=False), nn.BatchNorm2d(c.stem), nn.SiLU()]
        cin = c.stem
        for width, depth, stride in zip(c.widths, c.depths, c.strides):
            for i in range(depth):
                layers.append(MBConv(cin, width, stride if i == 0 else 1, c.expand))
                cin = width
        layers += [nn.Conv2d(cin, c.head, 1, bias=False), nn.BatchNorm2d(c.head), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(c.dropout)
        self.att = nn.Conv1d(c.head, c.n_classes, 1)
        self.cla = nn.Conv1d(c.head, c.n_classes, 1)
        self.distill = nn.Linear(c.head, c.d_distill) if c.d_distill else None

    def forward(self, mel: torch.Tensor) -> dict:
        h = self.features(mel[:, None]).mean(dim=2)             # [B, C, T']
        pooled = h.mean(dim=2)
        h = self.drop(h)
        frame = self.cla(h)                                     # [B, K, T']
        weights = torch.softmax(torch.tanh(self.att(h)), dim=-1)
        clip = (weights * frame).sum(-1)
        return {"clip": clip, "frame": frame.transpose(1, 2),
                "distill": None if self.distill is None else self.distill(pooled)}


def score(out: dict) -> torch.Tensor:
    """The chain's SED score: 0.5 sigmoid(clip) + 0.5 max over frames of sigmoid(frame), [B, K]."""
    return 0.5 * torch.sigmoid(out["clip"]) + 0.5 * torch.sigmoid(out["frame"]).amax(dim=1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class SEDTrainSettings:
    epochs: int = 4
    samples_per_epoch: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    soundscape_fraction: float = 0.1
    distill_weight: float = 1.0


def predict(model: SED, mels, batch_size: int = 128) -> np.ndarray:
    """Scores [N, K] of float16/32 mels [N, n_mels, frames] (a memmap is read batch by batch)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(mels), batch_size):
            out.append(score(model(torch.as_tensor(np.asarray(mels[i:i + batch_size], dtype=np.float32)))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_classes), np.float32)


def train(config: SEDConfig, settings: SEDTrainSettings, mels, index: np.ndarray, y: np.ndarray,
          is_soundscape: np.ndarray, target_emb: np.ndarray | None, seed: int, sampler_weights,
          val=None, auc_fn=None, log=None) -> tuple[SED, list[dict]]:
    """Train on rows ``index`` of ``mels`` (targets ``y`` [n, K], ``target_emb`` [n, E] for distillation),
    drawing ``samples_per_epoch`` rows per epoch with ``sampler_weights(is_soundscape, fraction)``.
    ``val``: (mels rows, y) scored after each epoch with ``auc_fn``; the last epoch's model is kept
    (few epochs, one-cycle schedule)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SED(config)
    w = torch.as_tensor(sampler_weights(is_soundscape, settings.soundscape_fraction), dtype=torch.float64)
    steps = math.ceil(settings.samples_per_epoch / settings.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=steps * settings.epochs)
    y_t = torch.as_tensor(y, dtype=torch.float32)
    emb_t = None if target_emb is None else torch.as_tensor(target_emb, dtype=torch.float32)
    history = []
    for epoch in range(settings.epochs):
        model.train()
        draw = torch.multinomial(w, settings.samples_per_epoch, replacement=True, generator=gen)
        total = 0.0
        for i in range(0, len(draw), settings.batch_size):
            b = draw[i:i + settings.batch_size].numpy()
            rows = index[b]
            order = np.argsort(rows)  # memmap reads in ascending order
            x = torch.as_tensor(np.asarray(mels[rows[order]], dtype=np.float32))
            b = b[order]
            out = model(x)
            target = y_t[b]
            loss = 0.5 * (F.binary_cross_entropy_with_logits(out["clip"], target)
                          + F.binary_cross_entropy_with_logits(out["frame"].amax(dim=1), target))
            if emb_t is not None and out["distill"] is not None and settings.distill_weight > 0:
                loss = loss + settings.distill_weight * F.mse_loss(out["distill"], emb_t[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        record = {"epoch": epoch, "loss": total / len(draw), "val_macro_auc": float("nan")}
        if val is not None and auc_fn is not None:
            record["val_macro_auc"] = auc_fn(val[1], predict(model, val[0]))
        history.append(record)
        if log:
            log(epoch, record)
    return model.eval(), history


def open_mels(mels):
    """``mels`` itself, or, given the path of a .npy (what a cluster task receives instead of the
    array), that file memory-mapped read-only: a task reads only the rows it trains on."""
    if isinstance(mels, (str, Path)):
        path = Path(mels)
        if not path.exists():
            raise FileNotFoundError(f"{path}: the log-mel store is not at this path on this machine (every "
                                    "worker needs the same files at the same paths, docs/scaling.md)")
        return np.load(path, mmap_mode="r")
    return mels


def fold_task(config: SEDConfig, settings: SEDTrainSettings, mels, y: np.ndarray, is_soundscape: np.ndarray,
              target_emb: np.ndarray | None, index: np.ndarray, val_index: np.ndarray | None,
              test_index: np.ndarray, seed: int, sampler_weights, auc_fn=None,
              threads: int | None = None) -> dict:
    """One SED model, in this process or as a cluster task (``threads`` set: a worker's torch threads
    and deterministic algorithms, as the stage sets them): `train` on rows ``index`` of ``mels`` (an
    array or the path of its .npy, `open_mels`), with targets ``y``, soundscape flags and
    distillation targets ``target_emb`` indexed by the same rows as ``mels`` (all rows: shared by
    every fold), validated on ``val_index`` (None: no validation). Returns the scores of
    ``val_index`` ("oof", None without it) and of ``test_index`` ("test"), the state, the history,
    the curve [(epoch, record)] and the training seconds. `train` seeds from ``seed`` alone, so
    the bytes do not depend on where it runs."""
    if threads is not None:
        torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True)
    mels = open_mels(mels)
    curve: list[tuple[int, dict]] = []
    started = time.perf_counter()
    model, history = train(config, settings, mels, index, y[index], is_soundscape[index],
                           None if target_emb is None else target_emb[index], seed=seed,
                           sampler_weights=sampler_weights,
                           val=None if val_index is None else (mels[val_index], y[val_index]), auc_fn=auc_fn,
                           log=lambda epoch, record: curve.append((epoch, dict(record))))
    seconds = time.perf_counter() - started
    return {"oof": None if val_index is None else predict(model, mels[val_index]),
            "test": predict(model, mels[test_index]), "state": model.state_dict(), "history": history,
            "curve": curve, "train_s": seconds}
