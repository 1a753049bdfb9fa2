"""Opening the probed backbone with the unhashed ``runtime`` knobs (threads, batch size).

Probe and extract both read audio through the same runner, opened here once; the knobs that
only change speed come from params.yaml's ``runtime`` section, which no stage declares to DVC
(tests/test_runtime_neutral.py shows they leave the features' bytes unchanged).
"""
from __future__ import annotations

from birdclef_eos.backbone.runner import Backbone
from stages.paths import BACKBONE_JSON, BLOCKS_JSON, PROBED_ONNX


def open_backbone(params: dict, blocks: list[int] | None = None) -> Backbone:
    """The runner over models/backbone_probed.onnx; ``params`` holds `backbone`, `dataset` and
    `runtime` as a stage receives them; ``blocks`` limits the block outputs (None = all)."""
    runtime = params["runtime"]
    return Backbone(PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON, threads=runtime["backbone_threads"],
                    batch_size=runtime["backbone_batch_size"],
                    chunk_mapping=params["backbone"]["chunk_mapping"],
                    input_rate=params["dataset"]["sample_rate"], blocks=blocks, progress=False)
