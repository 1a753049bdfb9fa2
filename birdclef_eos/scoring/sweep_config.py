"""The typed config of the post-processing sweep (sweep.py; the `sweep` stage): params.yaml `sweep`,
each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why pydantic, and why no
defaults here). The grids are written into the sweep's JSON as given, so they are ``numbers`` as
written (``0`` stays ``0``). Imports no numpy: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from birdclef_eos.knobs import Config, Confidence, Draws, Seed, Text, numbers


class SweepParams(Config):
    """params.yaml `sweep`: the head whose OOF is swept and its raw submission, the prior alpha x
    sigma grid, the paired bootstrap of the pick against v6 on the boards."""
    model: Text                                  # a train variant (its predictions/oof/<model>)
    raw: Text                                    # a submission (submissions/<raw>)
    prior_alpha: numbers(0, as_written=True)
    sigma: numbers(0, as_written=True)
    bootstrap: Draws
    confidence: Confidence
    seed: Seed
