"""The frontend cut (birdclef_eos/backbone/frontend.py): same outputs as the whole graph, errors that name the knob."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.backbone.frontend import FrontendError, FrontendRunner, make_session, real_dft, split_model
from birdclef_eos.backbone.tflite_to_onnx import cosine_basis
from tests.fakes.backbone_fixtures import probed_perch_tiny

SAMPLES, FRAME = 1024, 128
RTOL = 1e-5  # of each output's largest magnitude


def toy(dft: str) -> onnx.ModelProto:
    """[B, 1024] -> 8 Hann-windowed frames -> DFT -> a 1x3 conv -> mean, plus a branch reading the
    input directly (the back graph must get it too). ``dft``: "real_dft" (the scope
    birdclef_eos/backbone/tflite_to_onnx.py writes, matmul64 form) or "onnx" (an ONNX DFT node)."""
    rng = np.random.default_rng(0)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)
    inits = [numpy_helper.from_array(window, "window"),
             numpy_helper.from_array(rng.standard_normal((4, 1, 1, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([2], np.int64), "axis2")]
    if dft == "real_dft":
        inits += [numpy_helper.from_array(np.array([0, 8, FRAME], np.int64), "shape"),
                  numpy_helper.from_array(cosine_basis(FRAME, np.float64), "toy/rfft/real_dft/cos_basis")]
        scope = "toy/rfft/real_dft"
        nodes = [
            helper.make_node("Reshape", ["x", "shape"], ["frames"], name="toy/frames"),
            helper.make_node("Mul", ["frames", "window"], ["windowed"], name="toy/window"),
            helper.make_node("Cast", ["windowed"], ["d"], name=f"{scope}/to_double", to=TensorProto.DOUBLE),
            helper.make_node("MatMul", ["d", "toy/rfft/real_dft/cos_basis"], ["r"], name=f"{scope}/real_dft"),
            helper.make_node("Cast", ["r"], ["spec"], name=f"{scope}/to_float", to=TensorProto.FLOAT),
            helper.make_node("Mul", ["spec", "spec"], ["power"], name="toy/power"),
        ]
    else:
        inits += [numpy_helper.from_array(np.array([0, 8, FRAME, 1], np.int64), "shape"),
                  numpy_helper.from_array(window.reshape(FRAME, 1), "window_col"),
                  numpy_helper.from_array(np.array([3], np.int64), "axis3")]
        nodes = [
            helper.make_node("Reshape", ["x", "shape"], ["frames"], name="toy/frames"),
            helper.make_node("Mul", ["frames", "window_col"], ["windowed"], name="toy/window"),
            helper.make_node("DFT", ["windowed"], ["spectrum"], name="toy/dft", axis=2, onesided=1),
            helper.make_node("Mul", ["spectrum", "spectrum"], ["sq"], name="toy/sq"),
            helper.make_node("ReduceSum", ["sq", "axis3"], ["power"], name="toy/power", keepdims=0),
        ]
    nodes += [
        helper.make_node("Unsqueeze", ["power", "axis2"], ["img0"], name="toy/img0"),
        helper.make_node("Transpose", ["img0"], ["img"], name="toy/img", perm=[0, 2, 1, 3]),
        helper.make_node("Conv", ["img", "w"], ["conv"], name="toy/conv", pads=[0, 1, 0, 1]),
        helper.make_node("ReduceMean", ["conv"], ["pooled"], name="toy/pool", axes=[2, 3], keepdims=0),
        helper.make_node("ReduceMax", ["x"], ["peak"], name="toy/peak", axes=[1], keepdims=1),
        helper.make_node("Mul", ["pooled", "peak"], ["out"], name="toy/out"),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SAMPLES])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def close(a: np.ndarray, b: np.ndarray, rtol: float = RTOL) -> bool:
    return float(np.abs(a - b).max()) <= rtol * max(1.0, float(np.abs(a).max()))


@pytest.mark.parametrize("dft", ["real_dft", "onnx"])
def test_dft_cut_gives_the_graph_outputs(dft):
    model = toy(dft)
    x = np.random.default_rng(1).standard_normal((3, SAMPLES)).astype(np.float32)
    whole = make_session(model, 1).run(["out"], {"x": x})[0]
    runner = FrontendRunner(model, "dft", SAMPLES, lambda m, t: make_session(m, 1))
    assert runner.split.passthrough  # the body reads x directly, so x is fed to the back graph too
    assert len(runner.split.cuts) == 1 and runner.split.cuts[0].kind == ("real_dft" if dft == "real_dft" else "onnx_dft")
    assert "DFT" not in {n.op_type for n in runner.split.back.graph.node}
    assert not any("real_dft" in n.name for n in runner.split.back.graph.node)
    assert close(whole, runner.run(["out"], runner.prepare(x))[0])


def test_numpy_real_dft_matches_the_float64_basis():
    frames = np.random.default_rng(2).standard_normal((2, 5, 1, 256)).astype(np.float32)
    expected = (frames.astype(np.float64) @ cosine_basis(256, np.float64)).astype(np.float32)
    assert np.abs(real_dft(frames, rows=3) - expected).max() <= 1e-5 * np.abs(expected).max()
    assert np.abs(real_dft(frames, "float32") - expected).max() <= 1e-4 * np.abs(expected).max()


def test_backbone_tensor_cut_keeps_perch_tiny_features():
    probed, spec, blocks = probed_perch_tiny()
    x = np.random.default_rng(3).standard_normal((5, 160_000)).astype(np.float32)
    make = lambda frontend: Backbone(probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center",
                                        input_rate=32_000, progress=False, frontend=frontend)
    reference, cut = make("graph").features(x).arrays(), make("tensor:spectrogram").features(x).arrays()
    assert reference.keys() == cut.keys()
    for key in reference:
        assert close(reference[key], cut[key]), key


def test_dft_cut_on_a_graph_without_a_dft_names_the_knob():
    probed, spec, blocks = probed_perch_tiny()
    with pytest.raises(FrontendError, match="frontend 'dft'.*no recognisable DFT"):
        Backbone(probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center", input_rate=32_000,
                 progress=False, frontend="dft")
    with pytest.raises(FrontendError, match="unknown frontend 'fft'"):
        split_model(onnx.load(str(probed)), "fft", 160_000)
    with pytest.raises(FrontendError, match="no node produces tensor 'nowhere'"):
        split_model(onnx.load(str(probed)), "tensor:nowhere", 160_000)


def test_provider_knob_errors():
    probed, _, _ = probed_perch_tiny()
    with pytest.raises(FrontendError, match=r"unknown execution provider .tpu. \(runtime.provider\)"):
        make_session(probed, 1, "tpu")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(FrontendError, match=r"'cuda' \(runtime.provider\) needs CUDAExecutionProvider"):
            make_session(probed, 1, "cuda")


def test_auto_takes_the_dft_cut_when_there_is_one():
    probed, spec, blocks = probed_perch_tiny()
    assert Backbone(probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center", input_rate=32_000,
                    progress=False, frontend="auto").frontend is None
    from birdclef_eos.backbone.frontend import resolve

    assert resolve(toy("real_dft"), "auto") == "dft" and resolve(toy("onnx"), "auto") == "dft"
