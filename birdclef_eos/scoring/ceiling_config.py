"""The typed config of the plateau study (ceiling.py; the `ceiling` stage): params.yaml `ceiling`, each
knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why pydantic, and why no
defaults here). The weights and strengths are swept and written into the study's JSON as given (a
weight is a key there), so they are ``numbers`` as written (``0`` stays ``0``, not ``0.0``). The
names are checked against the submissions and blends by stages/schema.py ``rule_table2``. Imports no
numpy: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdclef_eos.knobs import Config, Confidence, Number, Seed, Text, names, numbers

Strengths = numbers(0.5, 1, hi_open=True, as_written=True)  # target macro-AUCs on the hidden rows


class CeilingControl(Config):
    """`ceiling.control`: a control partner (hidden labels + noise at each target macro-AUC, with the
    calibration of the submission ``like``), blended at ``weight``; achieved within ``tolerance``."""
    like: Text
    strengths: Strengths
    weight: Annotated[Number, Field(gt=0, le=1)]
    tolerance: Annotated[Number, Field(gt=0, le=0.05)]
    seed: Seed


class ControlBases(Config):
    """`ceiling.control_bases`: control bases at each strength with the real ``head`` blended in; the
    strength ``regime`` is the paper's base."""
    head: Text
    strengths: Strengths
    regime: Annotated[Number, Field(ge=0.5, lt=1)]
    seed: Seed


class CeilingParams(Config):
    """params.yaml `ceiling`: the base, the partners and the weights swept, the controls, the file
    bootstrap (at least 2 draws: an interval needs two)."""
    base: Text
    partners: names()
    weights: numbers(0, 1, as_written=True)
    control: CeilingControl
    control_bases: ControlBases
    bootstrap: Annotated[int, Field(ge=2)]
    confidence: Confidence
    seed: Seed
