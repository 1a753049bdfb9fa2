"""The typed config of the block surgery (backbone/surgery.py; the `surgery` stage): params.yaml
`surgery`, stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). Which
indices exist is known only from the backbone (stages/schema.py ``rule_blocks`` checks them against
models/blocks.json). Imports no onnx: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from birdclef_eos.knobs import Config, blocks


class SurgeryParams(Config):
    """params.yaml `surgery`: the MBConv blocks exposed as block_<ii> outputs (all, or 0-based indices)."""
    blocks: blocks("all")
