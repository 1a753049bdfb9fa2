"""The typed config of the paper (report/paper.py; the `paper` stage): params.yaml `paper`, the verdict
rule fixed before any number is read and the decimals shown, each knob's type, bounds and choices
stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). The stage writes the
rule into paper/verdicts.json, so its numbers stay as written (``Number``). Imports no numpy: the
stage re-runs on every `-S blend.weight=...`, and stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Confidence, Config, Draws, Number, Seed

WITHOUT_INTERVAL = ("point", "undecided")  # how a compare claim with no interval is decided (report/paper.py)


class VerdictRule(Config):
    """params.yaml `paper.verdict`: the paired bootstrap, the equivalence margin, the relative
    tolerance of a count, and what decides a compare claim without an interval (report/paper.py Rule)."""
    confidence: Confidence
    bootstrap: Draws
    seed: Seed
    margin: Annotated[Number, Field(ge=0)]
    tolerance: Annotated[Number, Field(ge=0)]
    without_interval: Literal[WITHOUT_INTERVAL]


class PaperParams(Config):
    """params.yaml `paper`."""
    verdict: VerdictRule
    digits: Annotated[int, Field(ge=0, le=10)]
