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
