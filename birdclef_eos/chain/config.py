"""The typed configs of the chain's models: params.yaml `base.protossm` (``ProtoSSMParams``) and
`base.sed` (``SEDParams``), their knobs' types and bounds stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here).

The stages build the dataclasses birdclef_eos/chain/protossm.py and sed.py train with (``ProtoSSMConfig``,
``TrainSettings``, ``SEDConfig``, ``SEDTrainSettings``) with ``birdclef_eos.knobs.fill``: every field by name, from the data's shape or the
knob of the same name, so the dataclass defaults there are never what a run uses (a field neither
gives is an error). That module ships inside the Kaggle model folder (the kernel rebuilds
``ProtoSSMConfig`` from the saved config.json): its bytes stay as they are, and it never imports this
one. This module imports no torch: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdclef_eos.knobs import Config, names, numbers, shift_sets

PositiveInt = Annotated[int, Field(ge=1)]


class ProtoSSMParams(Config):
    """params.yaml `base.protossm`."""
    inputs: names()                            # feature-store arrays concatenated per chunk
    tta: numbers(words=("oof",))              # test shifts averaged, or oof: the best of tta_candidates on the OOF
    tta_candidates: shift_sets()               # the shift sets `tta: oof` chooses among
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


class SEDParams(Config):
    """params.yaml `base.sed`: a B0-shaped SED CNN (stage widths, blocks per stage, how many stages
    start with stride 2) and its training."""
    folds: PositiveInt                         # >= 2: file-grouped folds with an OOF; 1: one model
    stem: PositiveInt
    widths: numbers(lo=1, integers=True)
    depth: PositiveInt
    downsample: Annotated[int, Field(ge=0)]
    expand: PositiveInt
    head: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    epochs: PositiveInt
    samples_per_epoch: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    soundscape_fraction: Annotated[float, Field(ge=0, le=1)]
    distill_weight: Annotated[float, Field(ge=0)]
    secondary_weight: Annotated[float, Field(ge=0, le=1)]
    smooth_sigma: Annotated[float, Field(ge=0)]
    seed: Annotated[int, Field(ge=0)]
    threads: PositiveInt
