"""The typed config of the shake-up (shakeup.py; run by the `leaderboard` stage): params.yaml
`shakeup`, each knob's type and bounds stated once (birdclef_eos/knobs.py says why pydantic, and why
no defaults here). Which names exist (submissions, blends) is stages/schema.py's check: it spans
sections. The stage writes `splits`, `public_share` and `seed` into shakeup.json, so the share stays
as written (``Number``). Imports no numpy: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdclef_eos.knobs import Config, Number, Seed, names


class ShakeupParams(Config):
    """params.yaml `shakeup`: the submissions and blends compared (``rows``), how many random
    public/private splits of the hidden files, the public board's share of the files (strictly between
    0 and 1: either end leaves a board empty) and the splits' seed."""
    rows: names()
    splits: Annotated[int, Field(ge=1)]
    public_share: Annotated[Number, Field(gt=0, lt=1)]
    seed: Seed
