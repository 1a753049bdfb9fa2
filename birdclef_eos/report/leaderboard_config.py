"""The typed config of the leaderboard's tables (the `leaderboard` stage): params.yaml `leaderboard`,
each knob's type and bounds stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults
here). Which names exist (submissions, blends, `others`) is stages/schema.py's ``rule_table2``: it
spans sections. The stage writes the bootstrap knobs into each table's JSON, so its confidence stays
as written (``Confidence``). Imports no numpy or matplotlib: the stage re-runs on every
`-S blend.weight=...`, and stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from birdclef_eos.knobs import Confidence, Config, Draws, Seed, Text, names


class BoardTable(Config):
    """A table of rows, each compared to ``reference`` on both boards."""
    rows: names()
    reference: Text


class Intervals(Config):
    """The paired bootstrap over files behind Tables 3 and 4's intervals."""
    draws: Draws
    seed: Seed
    confidence: Confidence


class LeaderboardParams(Config):
    """params.yaml `leaderboard`: Table 2's rows, the decimals shown, Tables 3 and 4, their intervals,
    and the submissions other stages write that are scored too (may be none)."""
    table2: names()
    digits: Annotated[int, Field(ge=0, le=10)]
    table3: BoardTable
    table4: BoardTable
    bootstrap: Intervals
    others: names(0)
