"""The typed config of the block probe: params.yaml `probe`, each knob's type, bounds and choices
stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). The distance and
normalisation choices are ``DISTANCES`` / ``NORMALISATIONS`` below, which knn.py checks its
arguments against too. Imports no numpy or scikit-learn: stages/schema.py, which every stage loads,
reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config, blocks

DISTANCES = ("cosine", "euclidean")               # the kNN distance (the paper does not say)
NORMALISATIONS = ("standardize", "l2", "none")    # fitted on each training fold (the paper does not say)

PositiveInt = Annotated[int, Field(ge=1)]
ProbeBlocks = blocks("all")  # all: every block in models/blocks.json


class ProbeParams(Config):
    """params.yaml `probe`: which clips, which blocks, the kNN and linear probes, the bootstrap."""
    species: Annotated[int, Field(ge=2)]
    clips: PositiveInt
    min_recordings: PositiveInt
    blocks: ProbeBlocks
    k: PositiveInt
    folds: Annotated[int, Field(ge=2)]
    distance: Literal[DISTANCES]
    normalisation: Literal[NORMALISATIONS]
    bootstrap: PositiveInt
    linear_probe: bool
    linear_c: Annotated[float, Field(gt=0)]
    linear_max_iter: PositiveInt
    select: PositiveInt                       # blocks handed on when train.blocks is auto
    seed: Annotated[int, Field(ge=0)]
