"""A small Vision Transformer on the log-mel image of each 5-s chunk (the paper's third model,
section 7.3: DINOv2 ViT-B/14 at 196 and 224 px).

``SpectrogramViT`` takes, like the sequence heads, a list of tensors; here one: the log-mel
spectrograms ``[B, n_mels, frames]`` (any float dtype). Each is standardised (per image: zero
mean, unit variance), resized bilinearly to the square input ``image x image``, cut into
``patch x patch`` patches (a Conv2d, one input channel), given a CLS token and a learned position
embedding, passed through ``depth`` pre-LN transformer blocks and classified from the final CLS
token (``pool="cls"``) or the mean of the patch tokens (``pool="mean"``): logits ``[B, K]``.

Parameter names follow timm's ViT (``cls_token``, ``pos_embed`` [1, 1 + (image/patch)^2, width],
``patch_embed.proj``, ``blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``,
``norm``, ``head``), so a timm/DINOv2 state dict of the same width loads by name. The position
embedding fixes the input size: 197 tokens at 196 px, 257 at 224 px with patch 14 (paper:
[1, 197, 768] against [1, 257, 768]). ``load_init`` refuses a checkpoint whose position
embedding does not fit the model, naming both shapes and the file, unless asked to interpolate
it (``resize_pos_embed``, bicubic over the patch grid, the CLS position kept).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PREDICT_BATCH = 256  # rows per inference call of the vit stage and a kernel (a 224-px batch of 4,096 would need GBs)
POOLS = ("cls", "mean")  # what the classifier reads: the CLS token (DINOv2's) or the mean patch token (timm's "avg")


class ViTError(ValueError):
    pass


class PosEmbedShapeError(ViTError):
    """A checkpoint's position embedding was made for another input size (or patch)."""


def grid_of(image: int, patch: int) -> int:
    """Patches per side; ``image`` must be a multiple of ``patch``."""
    if image <= 0 or patch <= 0 or image % patch:
        raise ViTError(f"image size {image} is not a positive multiple of the patch size {patch}")
    return image // patch


def pos_embed_shape(image: int, patch: int, width: int) -> tuple[int, int, int]:
    """[1, 1 + (image / patch)^2, width]: 197 tokens at 196 px, 257 at 224 px (patch 14)."""
    return (1, 1 + grid_of(image, patch) ** 2, width)


def image_of(tokens: int, patch: int) -> int | None:
    """The square input size a position embedding of ``tokens`` rows implies (CLS + grid), or None."""
    side = math.isqrt(max(tokens - 1, 0))
    return side * patch if side * side == tokens - 1 else None


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ViTError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # no dropout on the attention map (timm's default); the fused kernel is 2-3x faster on CPU
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, ffn, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(1, width, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 1, S, S] -> [B, grid^2, width]
        return self.proj(x).flatten(2).transpose(1, 2)


class SpectrogramViT(nn.Module):
    """ViT/patch on ``image x image`` log-mel images; ``forward([mels [B, n_mels, frames]]) -> [B, K]``."""

    def __init__(self, n_classes: int, image: int = 224, patch: int = 14, width: int = 64, depth: int = 2,
                 heads: int = 4, ffn: int = 128, dropout: float = 0.1, pool: str = "cls"):
        super().__init__()
        if pool not in POOLS:
            raise ViTError(f"pool must be one of {' | '.join(POOLS)}, got {pool!r}")
        self.image, self.patch, self.width, self.pool = image, patch, width, pool
        grid = grid_of(image, patch)
        self.patch_embed = PatchEmbed(patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(Block(width, heads, ffn, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)
        # start at p = 1 / n_classes per class rather than 0.5: multi-label BCE otherwise spends its
        # first hundred steps learning that most classes are absent (a ViT from scratch has few steps here)
        nn.init.constant_(self.head.bias, -math.log(max(n_classes - 1, 1)))

    def to_image(self, mels: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, frames] -> standardised [B, 1, image, image] float32."""
        if mels.ndim != 3:
            raise ViTError(f"expected log-mel tensors [B, n_mels, frames], got shape {tuple(mels.shape)}")
        x = mels.float()
        mean = x.mean(dim=(1, 2), keepdim=True)
        std = x.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
        x = ((x - mean) / std)[:, None]
        if x.shape[-2:] != (self.image, self.image):
            x = F.interpolate(x, size=(self.image, self.image), mode="bilinear", align_corners=False)
        return x

    def forward(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        if len(tokens) != 1:
            raise ViTError(f"the ViT reads one tensor (the log-mel spectrograms), got {len(tokens)}")
        x = self.patch_embed(self.to_image(tokens[0]))
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.head(self.head_drop(x[:, 0] if self.pool == "cls" else x[:, 1:].mean(dim=1)))


def build_vit(config: dict) -> SpectrogramViT:
    """A ViT from its config: ``n_classes``, ``image``, ``patch``, ``width``, ``depth``, ``heads``,
    ``ffn``, ``dropout``, ``pool`` (what models/vit/<size>/config.json stores under ``model``)."""
    return SpectrogramViT(config["n_classes"], config["image"], config["patch"], config["width"],
                          config["depth"], config["heads"], config["ffn"], config["dropout"],
                          config.get("pool", "cls"))


def build_vit_from(config: dict, init: str | None = None, resize: bool = False) -> SpectrogramViT:
    """``build_vit(config)`` with the user-supplied state dict ``init`` loaded (``load_init``), when
    given. Module-level, so ``functools.partial(build_vit_from, init=..., resize=...)`` is a fold
    builder a cluster task can carry (crossval.train_folds ``build``)."""
    model = build_vit(config)
    if init:
        load_init(model, init, resize=resize)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resize_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """[1, 1 + g^2, C] -> [1, 1 + grid^2, C]: the CLS position kept, the g x g patch positions
    interpolated bicubically to grid x grid (as timm's resample_abs_pos_embed)."""
    if pos.ndim != 3 or pos.shape[0] != 1:
        raise PosEmbedShapeError(f"position embedding of shape {list(pos.shape)}: expected [1, 1 + g^2, C]")
    old = math.isqrt(pos.shape[1] - 1)
    if old * old != pos.shape[1] - 1:
        raise PosEmbedShapeError(f"position embedding of shape {list(pos.shape)}: {pos.shape[1] - 1} patch "
                                 "positions are not a square grid")
    cls, patches = pos[:, :1], pos[:, 1:]
    if old == grid:
        return pos.clone()
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos.dtype)
    return torch.cat([cls, patches], dim=1)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a plain one, or wrapped under ``state_dict`` / ``model``."""
    path = Path(path)
    if not path.exists():
        raise ViTError(f"{path}: ViT checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or non-torch file
        raise ViTError(f"{path}: not a readable torch state dict ({type(e).__name__}: {e})") from e
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ViTError(f"{path}: expected a state dict of tensors")
    return state


def fit_state(model: SpectrogramViT, state: dict[str, torch.Tensor], source: str,
              resize: bool = False, keep_head: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """``state`` made to fit ``model``, and a report of what was done.

    - ``pos_embed`` of another shape: ``PosEmbedShapeError`` naming both shapes, the input sizes
      they imply and ``source``, unless ``resize`` (then interpolated to the model's grid).
    - a three-channel ``patch_embed.proj.weight`` (an RGB model): summed over its colour channels.
    - ``head.*`` of another class count (a backbone's own head): left out when ``keep_head`` is
      False or the shape differs (the model keeps its fresh head).
    - any other tensor of another shape: ``ViTError`` naming the key, both shapes and ``source``.
    """
    own = model.state_dict()
    out, report = {}, {"source": str(source), "resized_pos_embed": None, "summed_rgb": False,
                       "skipped": [], "unexpected": [], "missing": []}
    # the position embedding first: its shape is the one error worth naming before any other
    for key, value in sorted(state.items(), key=lambda kv: kv[0] != "pos_embed"):
        if key not in own:
            report["unexpected"].append(key)
            continue
        want = tuple(own[key].shape)
        if key == "pos_embed" and tuple(value.shape) != want:
            got_image = image_of(value.shape[1], model.patch) if value.ndim == 3 else None
            if not resize:
                implied = f" (a {got_image}-px model at patch {model.patch})" if got_image else ""
                raise PosEmbedShapeError(
                    f"{source}: position embedding pos_embed has shape {list(value.shape)}{implied}, but this "
                    f"{model.image}-px model (patch {model.patch}) needs {list(want)}; train or pick a "
                    f"checkpoint of this input size, or set resize_pos_embed: true to interpolate it")
            if value.ndim != 3 or value.shape[2] != want[2]:
                raise PosEmbedShapeError(f"{source}: pos_embed has shape {list(value.shape)}; its width cannot "
                                         f"be resized to {list(want)}")
            report["resized_pos_embed"] = [list(value.shape), list(want)]
            value = resize_pos_embed(value, math.isqrt(want[1] - 1))
        elif key == "patch_embed.proj.weight" and value.ndim == 4 and value.shape[1] == 3 and want[1] == 1:
            value, report["summed_rgb"] = value.sum(dim=1, keepdim=True), True
        if key.startswith("head.") and (not keep_head or tuple(value.shape) != want):
            report["skipped"].append(key)
            continue
        if tuple(value.shape) != want:
            raise ViTError(f"{source}: tensor {key} has shape {list(value.shape)}, this model needs {list(want)} "
                           "(width, depth, heads and FFN must match the checkpoint's)")
        out[key] = value.to(own[key].dtype)
    report["missing"] = sorted(k for k in own if k not in out)
    return out, report


def load_init(model: SpectrogramViT, path: str | Path, resize: bool = False) -> dict:
    """Load a user-supplied ViT state dict into ``model`` (see ``fit_state``); returns the report."""
    state, report = fit_state(model, read_state(path), str(path), resize=resize, keep_head=True)
    model.load_state_dict(state, strict=False)
    return report


def load_folds(folder: str | Path, image: int | None = None) -> tuple[list[SpectrogramViT], dict]:
    """The fold models of one trained ViT (``models/vit/<size>/``) and its config. ``image``, when
    given, is the input size the caller expects: a folder trained at another size is refused with
    the position-embedding error (never silently resized)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ViTError(f"{config_path}: missing; run the vit stage for this size")
    config = json.loads(config_path.read_text())
    mconfig = dict(config["model"], image=image or config["model"]["image"])
    models = []
    for k in config["folds"]:
        path = folder / f"fold_{k}.pt"
        if not path.exists():
            raise ViTError(f"{path}: fold checkpoint missing")
        model = build_vit(mconfig)
        state, _ = fit_state(model, read_state(path), str(path), resize=False)
        model.load_state_dict(state, strict=True)
        models.append(model.eval())
    return models, config


def stack_mels(mels: np.ndarray, index: np.ndarray) -> torch.Tensor:
    """Rows ``index`` of a [N, n_mels, frames] array as one float16 tensor (converted per batch)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(mels[index], dtype=np.float16)))
