"""Opening the probed backbone, the one way probe and extract read audio through it.

Its speed knobs (`backbone.threads`, `backbone.batch_size`) are hashed params: both move the last
bits of the features (tests/stages/test_runtime_neutral.py), so DVC must see them change.
"""
from __future__ import annotations

from birdclef_eos.backbone.runner import Backbone
from stages.paths import BACKBONE_JSON, BLOCKS_JSON, PROBED_ONNX


def open_backbone(params: dict, provider: str, blocks: list[int] | None = None) -> Backbone:
    """The runner over models/backbone_probed.onnx; ``params`` holds `backbone` and `dataset` as a
    stage receives them (`backbone` stays a mapping: the shipped Kaggle code reads it), ``provider``
    is the stage's typed `runtime.provider`; ``blocks`` limits the block outputs (None = all)."""
    return Backbone(PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON, threads=params["backbone"]["threads"],
                    batch_size=params["backbone"]["batch_size"],
                    chunk_mapping=params["backbone"]["chunk_mapping"],
                    input_rate=params["dataset"]["sample_rate"], blocks=blocks, progress=False,
                    frontend=params["backbone"]["frontend"], provider=provider)
