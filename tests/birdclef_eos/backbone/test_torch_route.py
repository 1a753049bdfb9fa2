"""The PyTorch route (runtime.provider torch-cpu | torch-cuda) against onnxruntime, on the CPU.

Stated tolerance: every output's largest |torch - onnxruntime| is at most TOLERANCE times
max(1, its largest |onnxruntime| value). Measured: perch_tiny 2.4e-6 (logits), BirdNET's converted
graph 9.5e-6 on logits of scale 16 (6e-7 relative). No GPU was available: torch-cuda is untested.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper, TensorProto

from birdclef_eos.backbone.frontend import FrontendError, make_session
from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.backbone.torch_route import TorchRouteError, TorchSession
from tests.fakes.backbone_fixtures import probed_perch_tiny

TOLERANCE = 1e-5


def assert_close(ref: dict, got: dict):
    assert ref.keys() == got.keys()
    for key in ref:
        assert ref[key].shape == got[key].shape, key
        err = float(np.abs(ref[key] - got[key]).max())
        scale = max(1.0, float(np.abs(ref[key]).max()))
        assert err <= TOLERANCE * scale, f"{key}: max |torch - onnxruntime| {err:.3g} > {TOLERANCE} x {scale:.3g}"


@pytest.mark.parametrize("frontend", ["graph", "tensor:spectrogram"])
def test_torch_route_features_match_onnxruntime_on_perch_tiny(frontend):
    probed, spec, blocks = probed_perch_tiny()
    x = (np.random.default_rng(3).standard_normal((5, 160_000)) * 0.1).astype(np.float32)
    out = {}
    for provider in ("cpu", "torch-cpu"):
        runner = Backbone(probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center",
                          input_rate=32_000, progress=False, frontend=frontend, provider=provider)
        out[provider] = runner.features(x).arrays()
    assert_close(out["cpu"], out["torch-cpu"])
    # the comparison can fail: other audio (the runner normalises scale and offset away) moves them
    other = np.roll(x, 1000, axis=1)
    moved = Backbone(probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center", input_rate=32_000,
                     progress=False, provider="torch-cpu").features(other).arrays()
    with pytest.raises(AssertionError):
        assert_close(out["cpu"], moved)


def birdnet_onnx() -> Path | None:
    from birdclef_eos.backbone.birdnet import conversion_key
    from stages.params import load_params

    params = load_params()
    path = (Path(params["runtime"]["cache_dir"]).expanduser() / "birdnet"
            / conversion_key(params["backbone"]["birdnet"]) / "backbone.onnx")
    return path if path.exists() else None


@pytest.mark.skipif(birdnet_onnx() is None, reason="BirdNET's converted graph is not in the cache "
                    "(tests/stages/test_checkpoint.py converts it)")
def test_torch_route_matches_onnxruntime_on_birdnet():
    path = birdnet_onnx()
    ort_session, torch_session = make_session(path, 2, "cpu"), make_session(path, 2, "torch-cpu")
    name = ort_session.get_inputs()[0].name
    x = (np.random.default_rng(4).standard_normal((2, 144_000)) * 0.1).astype(np.float32)
    names = [o.name for o in ort_session.get_outputs()]
    assert names == [o.name for o in torch_session.get_outputs()]
    assert_close(dict(zip(names, ort_session.run(names, {name: x}))),
                 dict(zip(names, torch_session.run(names, {name: x}))))


def test_unsupported_operator_is_named_before_anything_runs():
    graph = helper.make_graph([helper.make_node("Softplus", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(TorchRouteError, match=r"cannot run operators \['Softplus'\]"):
        TorchSession(helper.make_model(graph))


def test_torch_cuda_without_a_gpu_names_the_knob():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(TorchRouteError, match="runtime.provider torch-cuda"):
        make_session(probed_perch_tiny()[0], 1, "torch-cuda")
    with pytest.raises(FrontendError, match="torch-cpu"):
        make_session(probed_perch_tiny()[0], 1, "tpu")
