"""The typed config of Figure 3 (pipelines.py; drawn by the `blend` stage): params.yaml
`figures.pipelines`, stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here).
That ``standalone`` is a key of `submissions` and ``blend`` a key of `blends` is stages/schema.py's
check (it spans sections); the blend stage says so again when run on its own. Imports no matplotlib:
stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from birdclef_eos.knobs import Config, Text


class Pipelines(Config):
    """params.yaml `figures.pipelines`: the submission drawn on the left, the blend on the right."""
    standalone: Text
    blend: Text
