"""The typed config of a sequence head: its model (params.yaml `train.model`, `sidecar.head.model`)
and its optimiser (`train.optim`, `sidecar.head.optim`), each knob's type and bounds stated once
(birdclef_eos/knobs.py says why pydantic, and why no defaults here). The rule that spans two knobs,
``d`` a multiple of ``heads`` (multi-head attention splits the width), is the model's validator.

A stage makes birdclef_eos/heads/training.py's ``TrainConfig`` with ``TrainConfig.from_mapping(optim.model_dump())``
(a knob the section lacks keeps that dataclass's value, as before). This module imports no torch
(stages/schema.py, which every stage loads, reads it); heads/models.py ships inside the Kaggle model
folder and never imports it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from birdclef_eos.knobs import Config, KnobError

PositiveInt = Annotated[int, Field(ge=1)]


class HeadModel(Config):
    """A head's architecture: token width, attention heads, FFN width, dropout."""
    d: PositiveInt
    heads: PositiveInt
    ffn: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]

    @model_validator(mode="after")
    def _width_splits_into_heads(self) -> HeadModel:
        if self.d % self.heads:
            raise KnobError("d", self.d, f"expected a multiple of {{prefix}}heads ({self.heads})")
        return self


class HeadOptim(Config):
    """A head's training: early-stopped AdamW with cosine decay, mixup, a seeded sampler."""
    epochs: PositiveInt
    patience: PositiveInt
    min_delta: Annotated[float, Field(ge=0)]
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    mixup_alpha: Annotated[float, Field(ge=0)]
    samples_per_epoch: Annotated[int, Field(ge=1)] | None = None  # absent or null: the fold's training rows


class TrainOptim(HeadOptim):
    """The heads' optimiser (`train.optim`): the scalar mix's own learning-rate multiplier besides."""
    mix_lr_scale: Annotated[float, Field(gt=0)]
