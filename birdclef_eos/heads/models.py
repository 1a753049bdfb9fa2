"""The sequence heads that read one pooled token per probed backbone block (paper section 4).

Every head takes a list of T tensors ``[B, C_i]`` (one per selected block, in block order) and
returns logits ``[B, K]``:

- ``ScalarMix``: each token goes through its own Linear(C_i -> d) + LayerNorm + GELU (tokens of
  different widths need a common width before they can be mixed); a learned softmax over the T
  projected tokens mixes them, then dropout and Linear(d -> K). The LayerNorm has no affine
  scale, so a token cannot grow its own magnitude: the softmax weight is the only way to give a
  block more say, which keeps the learned weights readable as block importances.
- ``AttentionPool``: per-token Linear(C_i -> d) + LayerNorm + GELU, a learned block embedding,
  a learned CLS token, one pre-LN block (multi-head self-attention + FFN, dropout), a final
  LayerNorm and Linear(d -> K) on the CLS output. Only the CLS output is read and the block has
  no later layer, so the queries and the FFN are computed for the CLS token alone: the same
  function and the same parameters as the full block, about half the arithmetic.
- ``residual`` is ``AttentionPool`` with the last token replaced by h_last - h_previous, taken
  before the projection (paper section 7.2: h25 - h24).

``load_variant`` and ``predict_proba`` are what the predict stage calls.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

HEAD_TYPES = ("scalarmix", "attn", "residual")


class HeadError(ValueError):
    pass


def token_projection(c_in: int, d: int, affine: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, d), nn.LayerNorm(d, elementwise_affine=affine), nn.GELU())


def check_tokens(tokens: list[torch.Tensor], channels: list[int]) -> None:
    if len(tokens) != len(channels):
        raise HeadError(f"head expects {len(channels)} block tensors, got {len(tokens)}")
    for i, (t, c) in enumerate(zip(tokens, channels)):
        if t.ndim != 2 or t.shape[1] != c:
            raise HeadError(f"block tensor {i} has shape {tuple(t.shape)}, expected [B, {c}]")


class ScalarMix(nn.Module):
    def __init__(self, channels: list[int], n_classes: int, d: int = 256, dropout: float = 0.1):
        super().__init__()
        self.channels = list(channels)
        self.proj = nn.ModuleList(token_projection(c, d, affine=False) for c in channels)
        self.mix_logits = nn.Parameter(torch.zeros(len(channels)))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(d, n_classes)

    def block_weights(self) -> torch.Tensor:
        return torch.softmax(self.mix_logits, dim=0)

    def forward(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        check_tokens(tokens, self.channels)
        z = torch.stack([p(t) for p, t in zip(self.proj, tokens)], dim=1)  # [B, T, d]
        mixed = (self.block_weights()[None, :, None] * z).sum(dim=1)
        return self.classifier(self.drop(mixed))


class AttentionPool(nn.Module):
    def __init__(self, channels: list[int], n_classes: int, d: int = 256, heads: int = 4,
                 ffn: int = 512, dropout: float = 0.1, residual: bool = False):
        super().__init__()
        if residual and (len(channels) < 2 or channels[-1] != channels[-2]):
            raise HeadError(f"the residual head needs the last two blocks to have the same width, "
                            f"got channels {channels}; choose other blocks (head.blocks)")
        self.channels = list(channels)
        self.residual = residual
        self.proj = nn.ModuleList(token_projection(c, d) for c in channels)
        self.block_embedding = nn.Parameter(torch.zeros(len(channels), d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.block_embedding, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm_attn = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, d))
        self.norm_out = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, n_classes)

    def tokens_in(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.residual:
            return tokens
        return [*tokens[:-1], tokens[-1] - tokens[-2]]

    def encode(self, tokens: list[torch.Tensor], need_weights: bool = False):
        check_tokens(tokens, self.channels)
        tokens = self.tokens_in(tokens)
        z = torch.stack([p(t) for p, t in zip(self.proj, tokens)], dim=1) + self.block_embedding
        x = torch.cat([self.cls.expand(z.shape[0], -1, -1), z], dim=1)  # [B, 1 + T, d]
        h = self.norm_attn(x)
        attended, weights = self.attn(h[:, :1], h, h, need_weights=need_weights)
        cls = x[:, 0] + self.drop(attended[:, 0])
        cls = cls + self.drop(self.ffn(self.norm_ffn(cls)))
        return self.norm_out(cls), weights

    def forward(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.encode(tokens)[0])

    @torch.no_grad()
    def cls_attention(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Mean (over heads and rows) attention of CLS on each block token, renormalised
        over the block tokens: the attention pool's own 'block weights'."""
        _, weights = self.encode(tokens, need_weights=True)  # [B, 1, 1 + T]
        w = weights[:, 0, 1:]
        return (w / w.sum(dim=1, keepdim=True)).mean(dim=0)


def build_head(config: dict) -> nn.Module:
    """A head from its config: ``type``, ``channels``, ``n_classes``, ``d``, ``heads``, ``ffn``,
    ``dropout``."""
    kind = config["type"]
    if kind not in HEAD_TYPES:
        raise HeadError(f"unknown head type '{kind}'; expected one of {HEAD_TYPES}")
    if kind == "scalarmix":
        return ScalarMix(config["channels"], config["n_classes"], config["d"], config["dropout"])
    return AttentionPool(config["channels"], config["n_classes"], config["d"], config["heads"],
                         config["ffn"], config["dropout"], residual=kind == "residual")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_variant(folder: str | Path) -> tuple[list[nn.Module], dict]:
    """The fold models of one trained variant (``models/heads/<variant>/``) and its config."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise HeadError(f"{config_path}: missing; run the train stage for this variant")
    config = json.loads(config_path.read_text())
    models = []
    for k in range(config["n_folds"]):
        path = folder / f"fold_{k}.pt"
        if not path.exists():
            raise HeadError(f"{path}: fold checkpoint missing")
        model = build_head(config["model"])
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        models.append(model.eval())
    return models, config


@torch.no_grad()
def predict_proba(models: list[nn.Module], blocks: list[np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Mean over the fold models of the sigmoid probabilities, ``[N, K]`` float32."""
    if not models:
        raise HeadError("predict_proba: no models given")
    n = len(blocks[0])
    for i, b in enumerate(blocks):
        if len(b) != n:
            raise HeadError(f"block array {i} has {len(b)} rows, block array 0 has {n}")
    out = None
    for start in range(0, n, batch_size):
        tokens = [torch.as_tensor(np.asarray(b[start:start + batch_size], dtype=np.float32)) for b in blocks]
        probs = torch.stack([torch.sigmoid(m.eval()(tokens)) for m in models]).mean(dim=0)
        if out is None:
            out = np.empty((n, probs.shape[1]), dtype=np.float32)
        out[start:start + len(probs)] = probs.numpy()
    if out is None:
        raise HeadError("predict_proba: no rows to predict")
    return out
