"""The typed config of the `base` stage (the chain's blend, post-processing and OOF comparison):
params.yaml `base` less its models, each knob's type, bounds and choices stated once
(birdclef_eos/knobs.py says why pydantic, and why no defaults here). ``BaseParams`` is the whole
section, its models from chain/config.py; the base stage is handed its own knobs alone and types them
with ``ChainParams.pick``. Kept apart from chain/config.py so that the protossm and sed stages, which
read that module, do not depend on the post-processing config.

The base stage writes the blend weights, the variants' overrides and the shifts into manifests and
metrics, so those numbers are ``Number`` (as written: an int stays an int).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.chain.config import ProtoSSMParams, SEDParams
from birdclef_eos.knobs import Confidence, Config, Draws, Number, Seed, Text, numbers
from birdclef_eos.scoring.postprocess_config import Overrides

SOURCES = ("stages", "file")  # the stand-in built here, or a submission.csv the real chain produced


class ChainVariant(Config):
    """params.yaml `base.variants.<name>`: a knob variant of the built chain, its own submission: blend
    weights and post-processing over the chain's (each absent: the chain's)."""
    blend: dict[str, Annotated[Number, Field(ge=0, le=1)]] = None
    postprocess: Overrides = None


class ChainParams(Config):
    """The `base` stage's knobs: the rank blend of the chain's models (a weight per model), its
    post-processing over `postprocess`, its variants, where the submission comes from, and the OOF
    comparison against a head (the reference's shifts, the paired bootstrap)."""
    blend: dict[str, Annotated[Number, Field(ge=0)]]
    postprocess: Overrides
    variants: dict[str, ChainVariant]
    source: Literal[SOURCES]
    file: Text
    reference: Text
    reference_tta: numbers(as_written=True)
    bootstrap: Draws
    confidence: Confidence
    seed: Seed


class BaseParams(ChainParams):
    """params.yaml `base`: the chain's models and the base stage's knobs."""
    protossm: ProtoSSMParams
    sed: SEDParams
