"""The typed config of the block probe: params.yaml `probe`, and of the layer ablation that asks whether
the probe picked well: `ablation` (``AblationParams``, with the soundscape probe of soundscape.py,
``SoundscapeProbe``), each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says
why pydantic, and why no defaults here). The distance, normalisation and soundscape-probe choices are
``DISTANCES`` / ``NORMALISATIONS`` / ``METHODS`` below, which knn.py and soundscape.py check their
arguments against too. Imports no numpy or scikit-learn: stages/schema.py, which every stage loads,
reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config, Confidence, Draws, Number, Seed, Text, blocks, names

DISTANCES = ("cosine", "euclidean")               # the kNN distance (the paper does not say)
NORMALISATIONS = ("standardize", "l2", "none")    # fitted on each training fold (the paper does not say)
METHODS = ("ridge", "logistic")                   # the soundscape probe: multi-output closed form | one-vs-rest

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


class SoundscapeProbe(Config):
    """`ablation.soundscape_probe`: a second ranking of the blocks, on labelled soundscape chunks in
    folds grouped by file (soundscape.py)."""
    method: Literal[METHODS]
    folds: Annotated[int, Field(ge=2)]
    c: Annotated[Number, Field(gt=0)]         # inverse L2 strength (ridge alpha = 1/c)
    max_iter: PositiveInt                     # logistic only


class AblationParams(Config):
    """params.yaml `ablation`: the probe's choice (a train variant and its submission) against the
    variants that read other blocks, by paired bootstrap; the soundscape probe beside it. The names
    are checked against `train.variants` and `submissions` by stages/schema.py ``rule_ablation``."""
    reference: Text
    reference_submission: Text
    variants: names()
    bootstrap: Draws
    confidence: Confidence
    seed: Seed
    soundscape_probe: SoundscapeProbe
