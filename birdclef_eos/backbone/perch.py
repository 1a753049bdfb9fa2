"""Perch v2 in the forms users have it: the ONNX file (with its DFT op or the no-DFT variant) or
Kaggle Models' TensorFlow SavedModel, converted here to ONNX (savedmodel_to_onnx.py, run in the
conversion environment) and proven against TensorFlow on fixed signals, as BirdNET's conversion is
proven against TFLite.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx

from birdclef_eos.backbone import fingerprint

FORMATS = ("onnx", "onnx_no_dft", "saved_model")
CONVERTER_MODULE = "birdclef_eos.backbone.savedmodel_to_onnx"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding birdclef_eos/


class PerchFormError(RuntimeError):
    pass


def has_dft(model: onnx.ModelProto) -> bool:
    return any(node.op_type in ("DFT", "STFT") for node in model.graph.node)


def check_form(model: onnx.ModelProto, form: str, where: str) -> None:
    """``onnx`` must hold its DFT op, ``onnx_no_dft`` must not (the frontend knob then runs it
    in numpy or leaves the graph whole); a SavedModel conversion may give either."""
    if form not in FORMATS:
        raise PerchFormError(f"unknown Perch v2 format {form!r}; expected one of {FORMATS}")
    if form == "onnx" and not has_dft(model):
        raise PerchFormError(f"{where}: format 'onnx' expects the graph with its DFT op, this one has none: "
                             f"set backbone.perch_v2.format: onnx_no_dft")
    if form == "onnx_no_dft" and has_dft(model):
        raise PerchFormError(f"{where}: format 'onnx_no_dft' but the graph has a DFT op: "
                             f"set backbone.perch_v2.format: onnx")


def convert_saved_model(saved_model: Path, output: Path, python: Path, opset: int,
                        windows: dict[str, np.ndarray]) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Convert in the conversion environment; returns (its record, the SavedModel's outputs
    {output: {signal: value[0]}} on ``windows``)."""
    if not (saved_model / "saved_model.pb").is_file():
        raise FileNotFoundError(f"Perch v2 SavedModel not found at {saved_model.resolve()}: expected a folder with "
                                f"saved_model.pb (backbone.perch_v2.path with format saved_model)")
    if not python.exists():
        raise FileNotFoundError(f"{python}: the conversion environment is missing; run setup.sh "
                                f"(it installs requirements-convert.txt into .venv-convert/)")
    with tempfile.TemporaryDirectory() as tmp:
        sig_path, ref_path = Path(tmp) / "signals.npz", Path(tmp) / "reference.npz"
        np.savez(sig_path, **windows)
        cmd = [str(python), "-m", CONVERTER_MODULE, str(saved_model), str(output), "--signals", str(sig_path),
               "--reference", str(ref_path), "--opset", str(opset)]
        env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
        done = subprocess.run(cmd, cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"SavedModel -> ONNX conversion of {saved_model} failed (exit {done.returncode}):\n"
                               f"{done.stderr[-3000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        reference: dict[str, dict[str, np.ndarray]] = {}
        with np.load(ref_path) as data:
            for key in data.files:
                name, sig = key.rsplit("/", 1)
                reference.setdefault(name, {})[sig] = data[key][0]
    return record, reference


def conversion_equivalence(onnx_path: Path, input_name: str, windows: dict[str, np.ndarray],
                           reference: dict[str, dict[str, np.ndarray]], rtol: float) -> dict:
    """Per output and signal: max abs difference ONNX vs TensorFlow relative to TensorFlow's
    largest magnitude; raises naming each one beyond ``rtol``."""
    names = sorted(reference)
    converted = fingerprint.run_outputs(onnx_path, input_name, windows, names)
    report, bad = {}, {}
    for name in names:
        for sig, ref in reference[name].items():
            got = converted[name][sig]
            if got.shape != ref.shape:
                raise ValueError(f"{onnx_path}: output {name!r} shape {got.shape} != SavedModel {ref.shape}")
            rel = float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-12)
            report[f"{name}/{sig}"] = rel
            if not rel <= rtol:
                bad[f"{name}/{sig}"] = rel
    if bad:
        raise ValueError(f"{onnx_path}: the converted Perch v2 differs from the SavedModel beyond {rtol:g} "
                         f"(relative to the largest value) on {bad}")
    return report
