"""The typed config of the pseudo-label table (pseudo.py; the `pseudo_table` stage): params.yaml
`pseudo_table`, each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why
pydantic, and why no defaults here). Imports no numpy: stages/schema.py, which every stage loads,
reads it.
"""
from __future__ import annotations

from birdclef_eos.knobs import Config, Confidence, Draws, Seed, Text, names


class PseudoTableParams(Config):
    """params.yaml `pseudo_table`: the unpseudo reference (a train variant and its submission), the
    rows (submission: student), the OOF pairs compared as a - b (``[a, b]``: the stage refuses any
    other length, naming the pair) and the paired file bootstrap."""
    reference: Text
    reference_submission: Text
    rows: dict[str, Text]
    oof_pairs: dict[str, names(2)]
    bootstrap: Draws
    confidence: Confidence
    seed: Seed
