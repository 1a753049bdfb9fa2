"""Shared test fixtures: the perch_tiny ONNX and its probed graph, built once per test session."""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import onnx

from birdclef_eos.backbone.surgery import expose_blocks
from birdclef_eos.backbone.perch_tiny import export_perch_tiny

SEED, WIDTH = 0, 0.25


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="perch_tiny_test_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=None)
def perch_tiny() -> tuple[Path, dict]:
    """(path of the fixture ONNX, its backbone spec)."""
    path = workdir() / "backbone.onnx"
    spec = {"name": "perch_tiny", **export_perch_tiny(path, SEED, WIDTH)}
    (workdir() / "backbone.json").write_text(json.dumps(spec))
    return path, spec


@functools.lru_cache(maxsize=None)
def probed_perch_tiny() -> tuple[Path, Path, Path]:
    """(probed ONNX, backbone.json, blocks.json) of the fixture, all blocks exposed."""
    path, spec = perch_tiny()
    probed, inventory = expose_blocks(onnx.load(str(path)), spec["window_samples"], spec["embedding_output"])
    inventory.update(logits_output=spec["logits_output"], embedding_output=spec["embedding_output"])
    onnx.save(probed, str(workdir() / "probed.onnx"))
    (workdir() / "blocks.json").write_text(json.dumps(inventory))
    return workdir() / "probed.onnx", workdir() / "backbone.json", workdir() / "blocks.json"


@functools.lru_cache(maxsize=None)
def perch_tiny_form(form: str) -> Path:
    """The fixture's ONNX in another form: `onnx` (an ONNX DFT node) or `opaque` (meaningless names)."""
    path = workdir() / f"backbone_{form}.onnx"
    export_perch_tiny(path, SEED, WIDTH, form=form)
    return path


def convert_python() -> Path:
    from stages.params import load_params

    python = Path(load_params()["backbone"]["birdnet"]["convert_python"])
    return python if python.is_absolute() else Path(__file__).resolve().parents[2] / python


@functools.lru_cache(maxsize=None)
def perch_tiny_saved_model() -> tuple[Path, Path, dict]:
    """(SavedModel folder, its ONNX conversion, the conversion's equivalence report) of the fixture,
    rebuilt in TensorFlow (perch_tiny_tf.py) and converted by savedmodel_to_onnx.py in the conversion
    environment. Cached in the user cache under a key of the weights and both scripts (about 40 s
    the first time). Skips the calling test when .venv-convert is absent."""
    import hashlib
    import os
    import subprocess

    import pytest

    from birdclef_eos.backbone import fingerprint, perch
    from birdclef_eos.backbone.perch_tiny import export_weights

    python = convert_python()
    if not python.exists():
        pytest.skip(f"conversion environment absent ({python}): setup.sh creates it")
    weights = workdir() / "weights.npz"
    export_weights(weights, SEED, WIDTH)
    here = Path(perch.__file__).parent
    digest = hashlib.sha256(weights.read_bytes())
    for script in ("perch_tiny_tf.py", "savedmodel_to_onnx.py", "tflite_to_onnx.py", "fingerprint.py", "perch.py"):
        digest.update((here / script).read_bytes())
    folder = Path(os.path.expanduser("~/.cache/birdclef-eos/perch_tiny_saved_model")) / digest.hexdigest()[:16]
    saved, converted, report = folder / "saved_model", folder / "backbone.onnx", folder / "equivalence.json"
    if not report.exists():
        tmp = folder.with_name(folder.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=str(perch.PACKAGE_ROOT), TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
        subprocess.run([str(python), "-m", "birdclef_eos.backbone.perch_tiny_tf", str(weights), str(tmp / "saved_model")],
                       check=True, env=env, capture_output=True)
        windows = fingerprint.signals(160000, 32000)
        _, reference = perch.convert_saved_model(tmp / "saved_model", tmp / "backbone.onnx", python, 17, windows)
        equivalence = perch.conversion_equivalence(tmp / "backbone.onnx", "inputs", windows, reference, 1e-3)
        (tmp / "equivalence.json").write_text(json.dumps(equivalence))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return saved, converted, json.loads(report.read_text())
