"""ProtoSSM: the baseline chain's sequence model over a soundscape file's 12 chunk embeddings.

Rebuilt from the public chain's description (docs in birdclef_eos/chain/README.md):
per-chunk Linear(E -> d) + LayerNorm + GELU + dropout; a learned position encoding over the file's
chunks; site and hour embeddings (``meta_dim`` each) concatenated, projected to d and added to every
chunk; ``layers`` bidirectional selective state-space layers (forward and time-reversed outputs
merged by a Linear, residual + LayerNorm), each followed by ``attn_heads``-head self-attention
(residual + LayerNorm); output = cosine(h, class prototype) x softplus(temperature) + class bias.
Optionally (``mix_logits``) the output is mixed per class with the backbone's logit through a
learned gate sigmoid(alpha_c).

Shapes: emb float32 [B, T, E], site/hour int64 [B], backbone logits [B, T, K] -> logits [B, T, K].
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ProtoSSMConfig:
    d_input: int
    n_classes: int
    d_model: int = 128
    d_state: int = 16
    d_conv: int = 4
    layers: int = 2
    attn_heads: int = 2
    n_windows: int = 12
    n_sites: int = 20
    meta_dim: int = 16
    dropout: float = 0.15
    temperature: float = 5.0
    mix_logits: bool = False
    unknown_meta: bool = False  # one more site and hour slot (index n_sites / 24) for sequences with no site or hour

    def as_dict(self) -> dict:
        return asdict(self)


class SelectiveSSM(nn.Module):
    """A diagonal selective state-space scan (Mamba-style, no hardware kernel): per channel a state of
    ``d_state``, input-dependent step dt, B and C; causal depthwise conv before the scan.
    [B, T, d] -> [B, T, d]; output at t depends on inputs 0..t only."""

    def __init__(self, d: int, d_state: int = 16, d_conv: int = 4):
        super().__init__()
        self.in_proj = nn.Linear(d, d, bias=False)
        self.conv = nn.Conv1d(d, d, d_conv, padding=d_conv - 1, groups=d)
        self.dt = nn.Linear(d, d)
        self.B = nn.Linear(d, d_state, bias=False)
        self.C = nn.Linear(d, d_state, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d, 1))
        self.D = nn.Parameter(torch.ones(d))
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        u = self.in_proj(x)
        u = F.silu(self.conv(u.transpose(1, 2))[:, :, :T].transpose(1, 2))
        dt = F.softplus(self.dt(u))                     # [B, T, d]
        A = -torch.exp(self.A_log)                      # [d, S]
        Bm, Cm = self.B(u), self.C(u)                   # [B, T, S]
        h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
        ys = []
        for t in range(T):
            h = h * torch.exp(A * dt[:, t, :, None]) + (dt[:, t, :, None] * Bm[:, t, None, :]) * u[:, t, :, None]
            ys.append((h * Cm[:, t, None, :]).sum(-1))
        return self.out(torch.stack(ys, dim=1) + u * self.D)


class BiSSMLayer(nn.Module):
    """forward scan and the scan of the time-reversed sequence (flipped back), merged by a Linear,
    dropout, residual + LayerNorm."""

    def __init__(self, d: int, d_state: int, d_conv: int, dropout: float):
        super().__init__()
        self.fwd = SelectiveSSM(d, d_state, d_conv)
        self.bwd = SelectiveSSM(d, d_state, d_conv)
        self.merge = nn.Linear(2 * d, d)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def directions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fwd(x), self.bwd(x.flip(1)).flip(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hf, hb = self.directions(x)
        return self.norm(x + self.drop(self.merge(torch.cat([hf, hb], dim=-1))))


class ProtoSSM(nn.Module):
    def __init__(self, config: ProtoSSMConfig):
        super().__init__()
        c = self.config = config
        self.input_proj = nn.Sequential(nn.Linear(c.d_input, c.d_model), nn.LayerNorm(c.d_model), nn.GELU(),
                                        nn.Dropout(c.dropout))
        self.pos = nn.Parameter(torch.randn(1, c.n_windows, c.d_model) * 0.02)
        self.site = nn.Embedding(c.n_sites + int(c.unknown_meta), c.meta_dim)
        self.hour = nn.Embedding(24 + int(c.unknown_meta), c.meta_dim)
        self.meta = nn.Linear(2 * c.meta_dim, c.d_model)
        self.ssm = nn.ModuleList([BiSSMLayer(c.d_model, c.d_state, c.d_conv, c.dropout) for _ in range(c.layers)])
        self.attn = nn.ModuleList([nn.MultiheadAttention(c.d_model, c.attn_heads, dropout=c.dropout, batch_first=True)
                                   for _ in range(c.layers)])
        self.attn_norm = nn.ModuleList([nn.LayerNorm(c.d_model) for _ in range(c.layers)])
        self.prototypes = nn.Parameter(torch.randn(c.n_classes, c.d_model) * 0.02)
        self.temperature = nn.Parameter(torch.tensor(math.log(math.expm1(c.temperature))))  # softplus = init
        self.class_bias = nn.Parameter(torch.zeros(c.n_classes))
        self.gate = nn.Parameter(torch.zeros(c.n_classes)) if c.mix_logits else None

    @torch.no_grad()
    def init_prototypes(self, emb: torch.Tensor, targets: torch.Tensor) -> None:
        """Each class's prototype = the normalised mean projected embedding of its positive chunks
        (emb [N, E], targets [N, K]); classes without a positive keep their random start."""
        was = self.training
        self.eval()
        h = self.input_proj(emb)
        for k in range(self.config.n_classes):
            mask = targets[:, k] > 0.5
            if mask.any():
                self.prototypes[k] = F.normalize(h[mask].mean(0), dim=0)
        self.train(was)

    def forward(self, emb: torch.Tensor, site: torch.Tensor, hour: torch.Tensor,
                backbone_logits: torch.Tensor | None = None) -> torch.Tensor:
        T = emb.shape[1]
        h = self.input_proj(emb) + self.pos[:, :T]
        h = h + self.meta(torch.cat([self.site(site), self.hour(hour)], dim=-1))[:, None, :]
        for ssm, attn, norm in zip(self.ssm, self.attn, self.attn_norm):
            h = ssm(h)
            h = norm(h + attn(h, h, h, need_weights=False)[0])
        sim = F.normalize(h, dim=-1) @ F.normalize(self.prototypes, dim=-1).T
        out = sim * F.softplus(self.temperature) + self.class_bias
        if self.gate is not None and backbone_logits is not None:
            g = torch.sigmoid(self.gate)
            out = g * out + (1 - g) * backbone_logits
        return out


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def site_slots(sites, n_sites: int) -> dict[str, int]:
    """Site name -> embedding slot: sorted names, one slot each; past ``n_sites`` names share slots
    by a stable hash (recorded, not silent: the caller reports the overflow)."""
    names = sorted(set(map(str, sites)))
    return {s: (i if i < n_sites else int.from_bytes(s.encode(), "little") % n_sites) for i, s in enumerate(names)}


@dataclass
class TrainSettings:
    epochs: int = 40
    patience: int = 8
    batch_files: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    pos_weight_cap: float = 25.0
    distill_weight: float = 0.15
    swa_start: float = 0.65       # average the weights of every epoch from this fraction of `epochs` on
    focal_sequences: int = 0      # per epoch, this many sequences of random focal windows (unknown site and hour)


def pos_weights(targets: np.ndarray, cap: float) -> torch.Tensor:
    """Per-class BCE positive weight negatives/positives, capped (classes without positives: cap)."""
    y = targets.reshape(-1, targets.shape[-1])
    pos = y.sum(0)
    w = np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), cap)
    return torch.as_tensor(np.clip(w, 1.0, cap), dtype=torch.float32)


def predict(model: ProtoSSM, emb, site, hour, logits=None) -> np.ndarray:
    """Probabilities [F, T, K] of files (emb [F, T, E] numpy)."""
    model.eval()
    with torch.no_grad():
        z = model(torch.as_tensor(emb), torch.as_tensor(site), torch.as_tensor(hour),
                  None if logits is None else torch.as_tensor(logits))
    return torch.sigmoid(z).numpy()


def focal_batch(focal: dict, n: int, T: int, config: ProtoSSMConfig, gen: torch.Generator) -> dict:
    """``n`` sequences of ``T`` focal windows drawn at random (``focal``: emb [M, E], y [M, K]), with the
    unknown site and hour slots: the focal recordings' labels teach the model what the 150 labelled
    soundscapes cannot, as the heads' focal rows do."""
    idx = torch.randint(0, len(focal["emb"]), (n, T), generator=gen)
    return {"emb": focal["emb"][idx], "y": focal["y"][idx],
            "site": torch.full((n,), config.n_sites, dtype=torch.long), "hour": torch.full((n,), 24, dtype=torch.long)}


def train(config: ProtoSSMConfig, settings: TrainSettings, data: dict, val: dict, seed: int,
          auc_fn, log=None, focal: dict | None = None) -> tuple[ProtoSSM, list[dict]]:
    """Train one fold. ``data``/``val``: {"emb" [F, T, E], "site" [F], "hour" [F], "y" [F, T, K],
    "logits" [F, T, K] or None}. Positive-weighted BCE (+ distill_weight x MSE to the backbone logits
    when mixing), AdamW with a one-cycle schedule, early stopping on ``auc_fn(y, p)`` of ``val``, and
    weight averaging of the epochs from ``swa_start`` x epochs: the averaged model is kept when its
    validation AUC is at least the best single epoch's. ``focal`` ({"emb" [M, E], "y" [M, K]} tensors)
    adds ``settings.focal_sequences`` random focal sequences to every epoch (needs config.unknown_meta).
    Returns (model, per-epoch history)."""
    if focal is not None and settings.focal_sequences and not config.unknown_meta:
        raise ValueError("focal sequences need ProtoSSMConfig.unknown_meta (their site and hour are unknown)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ProtoSSM(config)
    emb, y = torch.as_tensor(data["emb"]), torch.as_tensor(data["y"])
    site, hour = torch.as_tensor(data["site"]), torch.as_tensor(data["hour"])
    logits = None if data.get("logits") is None or not config.mix_logits else torch.as_tensor(data["logits"])
    use_focal = focal is not None and settings.focal_sequences > 0
    init_emb, init_y = emb.reshape(-1, emb.shape[-1]), y.reshape(-1, y.shape[-1])
    if use_focal:
        init_emb, init_y = torch.cat([init_emb, focal["emb"]]), torch.cat([init_y, focal["y"]])
    model.init_prototypes(init_emb, init_y)
    bce = nn.BCEWithLogitsLoss(pos_weight=pos_weights(data["y"], settings.pos_weight_cap))
    n_sc = len(emb)
    n = n_sc + (settings.focal_sequences if use_focal else 0)
    steps = math.ceil(n / settings.batch_files)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=steps * settings.epochs)
    swa_from = int(settings.swa_start * settings.epochs)
    swa, swa_n = None, 0
    best, best_auc, best_epoch, since, history = copy.deepcopy(model), -math.inf, 0, 0, []
    vargs = (val["emb"], val["site"], val["hour"], val.get("logits") if config.mix_logits else None)
    for epoch in range(settings.epochs):
        model.train()
        e_emb, e_y, e_site, e_hour, e_logits = emb, y, site, hour, logits
        if use_focal:
            fb = focal_batch(focal, settings.focal_sequences, emb.shape[1], config, gen)
            e_emb, e_y = torch.cat([emb, fb["emb"]]), torch.cat([y, fb["y"]])
            e_site, e_hour = torch.cat([site, fb["site"]]), torch.cat([hour, fb["hour"]])
            e_logits = None  # no backbone-logit mixing on focal sequences
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, settings.batch_files):
            idx = order[i:i + settings.batch_files]
            out = model(e_emb[idx], e_site[idx], e_hour[idx], None if e_logits is None else e_logits[idx])
            loss = bce(out, e_y[idx])
            if e_logits is not None and settings.distill_weight > 0:
                loss = loss + settings.distill_weight * F.mse_loss(out, e_logits[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if epoch >= swa_from:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            swa = state if swa is None else {k: swa[k] + (state[k] - swa[k]) / (swa_n + 1)
                                             if state[k].is_floating_point() else state[k] for k in swa}
            swa_n += 1
        auc = auc_fn(val["y"], predict(model, *vargs))
        if auc > best_auc:
            best, best_auc, best_epoch, since = copy.deepcopy(model), auc, epoch, 0
        else:
            since += 1
        record = {"epoch": epoch, "loss": total / n, "val_macro_auc": auc, "best_epoch": best_epoch}
        history.append(record)
        if log:
            log(epoch, record)
        if since >= settings.patience:
            break
    if swa is not None:
        averaged = ProtoSSM(config)
        averaged.load_state_dict(swa)
        swa_auc = auc_fn(val["y"], predict(averaged, *vargs))
        history[-1]["swa_epochs"], history[-1]["swa_val_macro_auc"] = swa_n, swa_auc
        if swa_auc >= best_auc:
            return averaged.eval(), history
    return best.eval(), history


def flat_auc(auc, y: np.ndarray, prob: np.ndarray) -> float:
    """``auc`` over every window of [F, T, K] targets and probabilities (a picklable ``auc_fn``:
    ``functools.partial(flat_auc, auc)``)."""
    return auc(y.reshape(-1, y.shape[-1]), prob.reshape(-1, prob.shape[-1]))


def subset(data: dict, mask: np.ndarray) -> dict:
    """The files ``mask`` selects of a `train` data mapping (its "files" list left out)."""
    return {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in data.items() if k != "files"}


def fold_task(config: ProtoSSMConfig, settings: TrainSettings, data: dict, val: np.ndarray, seed: int,
              auc_fn, focal: dict | None, test: list[dict], threads: int | None = None,
              shifted: list[dict] | None = None) -> dict:
    """One cross-validation fold, in this process or as a cluster task (``threads`` set: a worker's
    torch threads and deterministic algorithms, as the stage sets them): `train` on the files
    outside ``val`` (boolean [F]), then its probabilities on ``val`` ("oof" [V, T, K]), on the
    ``val`` files of each ``shifted`` mapping (the same files as ``data``, read at another window
    shift: "oof_shifted", one [V, T, K] each) and on each test mapping ("test"), its state, history
    and curve [(epoch, record)]. `train` seeds from ``seed`` alone, so a fold's bytes do not depend
    on where it runs."""
    if threads is not None:
        torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True)
    curve: list[tuple[int, dict]] = []
    model, history = train(config, settings, subset(data, ~val), subset(data, val), seed=seed, auc_fn=auc_fn,
                           log=lambda epoch, record: curve.append((epoch, dict(record))), focal=focal)
    oof = predict(model, data["emb"][val], data["site"][val], data["hour"][val],
                  None if data["logits"] is None else data["logits"][val])
    moved = [predict(model, d["emb"][val], d["site"][val], d["hour"][val], None if d["logits"] is None else d["logits"][val])
             for d in (shifted or [])]
    return {"oof": oof, "oof_shifted": moved,
            "test": [predict(model, t["emb"], t["site"], t["hour"], t["logits"]) for t in test],
            "state": model.state_dict(), "history": history, "curve": curve}
