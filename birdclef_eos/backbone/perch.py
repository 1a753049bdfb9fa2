"""Perch v2 in the forms users have it: the ONNX file (with its DFT op or the no-DFT variant) or
Kaggle Models' TensorFlow SavedModel, converted here to ONNX (savedmodel_to_onnx.py, run in the
conversion environment) and proven against TensorFlow on fixed signals, as BirdNET's conversion is
proven against TFLite. ``build`` is the registry's builder (birdclef_eos/backbone/registry.py): identity by
the known size + sha256 (fast path), else the behavioural fingerprint `backbone.perch_v2.fingerprint`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx

from birdclef_eos.backbone import fingerprint
from birdclef_eos.backbone.choices import PERCH_FORMATS
from birdclef_eos.backbone.registry import BACKBONES, runtime_versions
from birdclef_eos.io.files import read_json, sha256_file

SPEC = BACKBONES["perch_v2"]
CONVERTER_MODULE = "birdclef_eos.backbone.savedmodel_to_onnx"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding birdclef_eos/


class PerchFormError(RuntimeError):
    pass


class BackboneFileError(RuntimeError):
    pass


def has_dft(model: onnx.ModelProto) -> bool:
    return any(node.op_type in ("DFT", "STFT") for node in model.graph.node)


def check_form(model: onnx.ModelProto, form: str, where: str) -> None:
    """``onnx`` must hold its DFT op, ``onnx_no_dft`` must not (the frontend knob then runs it
    in numpy or leaves the graph whole); a SavedModel conversion may give either."""
    if form not in PERCH_FORMATS:
        raise PerchFormError(f"unknown Perch v2 format {form!r}; expected one of {PERCH_FORMATS}")
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
        report = fingerprint.check(path, read_json(fp_path, "the Perch v2 fingerprint ships with the repository"))
    except fingerprint.FingerprintError as exc:
        raise BackboneFileError(f"{path.resolve()}: not the expected Perch v2 ({exc}); its sha256 "
                                f"{sha256_file(path)} is not the known {pc['sha256']} either") from exc
    return {"by": "fingerprint", "fingerprint": str(fp_path), **report}


def build(cfg: dict, out: Path, cache: Path) -> dict:
    """The user's Perch v2 at `backbone.perch_v2.path` in `backbone.perch_v2.format`, copied (or, a
    SavedModel, converted and proven against TensorFlow) to ``out`` and identified; its spec,
    provenance, input checksums and versions."""
    pc = cfg["perch_v2"]
    form = pc["format"]
    path = Path(pc["path"]).expanduser()
    source = {"path": str(pc["path"]), "format": form,
              "note": "user-supplied Perch v2; class names are placeholders"}
    versions = runtime_versions()
    if form == "saved_model":
        windows = fingerprint.signals(SPEC.window_samples, SPEC.sample_rate)
        record, reference = convert_saved_model(path, out, Path(cfg["birdnet"]["convert_python"]),
                                                pc["opset"], windows)
        source["conversion"] = {k: record[k] for k in ("seconds", "opset", "signature", "input", "outputs")}
        source["equivalence"] = conversion_equivalence(out, SPEC.input_name, windows, reference,
                                                       pc["max_relative_diff"])
        versions.update({f"convert/{k}": v for k, v in record["versions"].items()})
        inputs = {}
    else:
        if not path.is_file():
            check_perch_file(path, pc["bytes"], pc["sha256"])  # raises: where and what
        if not (form == "onnx" and known_file(path, pc["bytes"], pc["sha256"])):
            check_form(load_onnx(path, pc), form, str(path.resolve()))
        shutil.copyfile(path, out)
        inputs = {str(pc["path"]): sha256_file(path)}
    source["identity"] = perch_identity(out, pc, form)
    classes = [f"perch_{i:05d}" for i in range(pc["n_classes"])]
    return {"spec": SPEC.io(classes), "source": source, "inputs": inputs,
            "versions": versions, "summary": {"identity": source["identity"]["by"]}}
