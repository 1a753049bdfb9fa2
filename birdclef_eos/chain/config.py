"""The typed config of the chain's ProtoSSM: params.yaml `base.protossm`, its knobs' types and bounds
stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here).

The stage builds the two dataclasses birdclef_eos/chain/protossm.py trains with (``ProtoSSMConfig``,
``TrainSettings``) with ``birdclef_eos.knobs.fill``: every field by name, from the data's shape or the
knob of the same name, so the dataclass defaults there are never what a run uses (a field neither
gives is an error). That module ships inside the Kaggle model folder (the kernel rebuilds
``ProtoSSMConfig`` from the saved config.json): its bytes stay as they are, and it never imports this
one. This module imports no torch: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdclef_eos.knobs import Config, names, numbers

PositiveInt = Annotated[int, Field(ge=1)]


class ProtoSSMParams(Config):
    """params.yaml `base.protossm`."""
    inputs: names()                            # feature-store arrays concatenated per chunk
    tta: numbers()                             # test shifts averaged
    mix_logits: bool
    d_model: PositiveInt
    d_state: PositiveInt
    d_conv: PositiveInt
    layers: PositiveInt
    attn_heads: PositiveInt
    n_sites: PositiveInt
    meta_dim: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    temperature: Annotated[float, Field(gt=0)]
    epochs: PositiveInt
    patience: PositiveInt
    batch_files: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    pos_weight_cap: Annotated[float, Field(ge=1)]
    distill_weight: Annotated[float, Field(ge=0)]
    swa_start: Annotated[float, Field(ge=0, le=1)]
    seed: Annotated[int, Field(ge=0)]
    threads: PositiveInt
    focal_sequences: Annotated[int, Field(ge=0)]
    focal_secondary_weight: Annotated[float, Field(ge=0, le=1)]
