"""The typed config of post-processing: params.yaml `postprocess`, its knobs' types, bounds and
choices stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). An overrides
mapping takes the same knobs, each optional: stages/schema.py derives both tables from this model.

birdclef_eos/scoring/postprocess.py ships inside the Kaggle model folder: its ``Knobs`` dataclass (no
defaults either) stays a plain dataclass, and it never imports this module;
``postprocess.Knobs(**section.model_dump())`` makes one from the typed section.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config

NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


class Postprocess(Config):
    prior_alpha: NonNegative
    prior_k_hour: Annotated[float, Field(gt=0)]
    prior_k_site: Annotated[float, Field(gt=0)]
    prior_k_site_hour: NonNegative
    prior_clip: Annotated[float, Field(gt=0, lt=0.5)]
    prior_relative: bool
    sigma: NonNegative
    smooth_mode: Literal["nearest", "reflect", "mirror", "constant", "wrap"]  # scipy.ndimage's boundary modes
    smooth_space: Literal["logit", "prob"]
    smooth_truncate: Annotated[float, Field(gt=0)]
    tta_space: Literal["prob", "logit"]
    rank_power: NonNegative
    neighbour_base: Share
    tax_genus_alpha: Share
    tax_class_alpha: Share

