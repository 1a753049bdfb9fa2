"""Stage `surgery`: expose every MBConv block's output, spatially averaged, as a graph output.

Reads models/backbone.onnx and models/backbone.json; writes models/backbone_probed.onnx (the
original outputs unchanged, then the embedding if it was internal, then one `block_<ii>` [B, C]
per block), models/blocks.json (the block inventory) and Figure 1 (figures/architecture.png;
the probe stage draws it again with its choice marked).
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from birdclef_eos.backbone import surgery as block_surgery
from birdclef_eos.backbone.surgery_config import SurgeryParams
from birdclef_eos.io.files import atomic_path, read_json, sha256_file, write_json
from birdclef_eos.report.architecture import draw_architecture
from stages.paths import ARCHITECTURE_FIGURE, BACKBONE_JSON, BACKBONE_ONNX, BLOCKS_JSON, PROBED_ONNX

PARAMS = ("surgery",)


@dataclass
class SurgeryResult:
    """What the surgery notebook shows.

    blocks: the inventory entries of models/blocks.json ({"index", "name", "tensor", "stage",
    "channels", "spatial", ...}); max_abs_diff: original outputs of the probed graph against the
    original graph on test input (0 when surgery changed nothing it should not).
    """
    backbone: str
    rule: str
    layout: str
    n_found: int
    n_exposed: int
    stages: list[int]
    blocks: list[dict]
    max_abs_diff: dict[str, float]
    figure: str


def read_backbone():
    if not BACKBONE_ONNX.exists():
        raise FileNotFoundError(f"{BACKBONE_ONNX} not found: run the checkpoint stage first")
    spec = read_json(BACKBONE_JSON, "run the checkpoint stage")
    missing = [k for k in ("input_name", "sample_rate", "window_samples", "logits_output") if k not in spec]
    if missing:
        raise KeyError(f"{BACKBONE_JSON}: missing field(s) {missing}")
    return onnx.load(str(BACKBONE_ONNX)), spec


def inventory_record(inventory: dict, spec: dict, check: dict) -> dict:
    logits = spec["logits_output"]
    return {
        **inventory,
        "backbone": spec.get("name", "unknown"),
        "backbone_sha256": sha256_file(BACKBONE_ONNX),
        "input_name": spec["input_name"],
        "sample_rate": spec["sample_rate"],
        "window_samples": spec["window_samples"],
        "logits_output": logits,
        "logits_channels": int(check["shapes"][logits][-1]),
        "embedding_output": spec.get("embedding_output"),
    }


def run(params: dict, key: str | None = None) -> SurgeryResult:
    cfg = SurgeryParams.model_validate(params["surgery"])  # typed once (birdclef_eos/backbone/surgery_config.py)
    model, spec = read_backbone()
    probed, inventory = block_surgery.expose_blocks(
        model, int(spec["window_samples"]), spec.get("embedding_output"), cfg.blocks)
    check = block_surgery.compare_outputs(model, probed, int(spec["window_samples"]))
    record = inventory_record(inventory, spec, check)
    with atomic_path(PROBED_ONNX) as tmp:
        onnx.save(probed, str(tmp))
    write_json(BLOCKS_JSON, record)
    draw_architecture(record, ARCHITECTURE_FIGURE)
    return SurgeryResult(backbone=record["backbone"], rule=record["rule"], layout=record["layout"],
                         n_found=record["n_found"], n_exposed=len(record["blocks"]),
                         stages=sorted({b["stage"] for b in record["blocks"]}), blocks=record["blocks"],
                         max_abs_diff=check["max_abs_diff"], figure=str(ARCHITECTURE_FIGURE))
