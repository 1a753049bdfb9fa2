"""ONNX graph surgery: block discovery (Perch scopes and BirdNET Keras names), outputs unchanged,
checker, finite values, idempotence, block selection and the errors."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from birdclef_eos.backbone.surgery import SurgeryError, compare_outputs, expose_blocks
from tests.fakes.backbone_fixtures import perch_tiny

BIRDNET_WIDTHS = [36, 72, 108, 192]
BIRDNET_STAGE_BLOCKS = [3, 4, 5, 4]


def run_all(model: onnx.ModelProto, x: np.ndarray) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))


def fixture_model():
    path, spec = perch_tiny()
    return onnx.load(str(path)), spec


def conv(name, x, out, c_in, c_out, rng, inits, stride=1):
    w = rng.standard_normal((c_out, c_in, 1, 1)).astype(np.float32) * (2 / c_in) ** 0.5
    inits.append(helper.make_tensor(out + "/W", TensorProto.FLOAT, w.shape, w.ravel()))
    return helper.make_node("Conv", [x, out + "/W"], [out], name=name, strides=[stride, stride])


def birdnet_like_model() -> onnx.ModelProto:
    """A tiny NCHW graph named like BirdNET's tf2onnx conversion: 2 stages x 2 blocks, fused
    ';'-joined names, the embedding an internal ReduceMean."""
    rng, inits, nodes = np.random.default_rng(0), [], []
    inits.append(helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 8, 8]))
    nodes.append(helper.make_node("Reshape", ["INPUT", "shape"], ["spec"], name="model/RESHAPE/Reshape"))
    nodes.append(conv("model/CONV_0/Conv2D", "spec", "stem", 1, 4, rng, inits))
    x, c = "stem", 4
    for s, width in ((1, 6), (2, 10)):
        for b in (1, 2):
            p = f"model/BLOCK_{s}-{b}"
            fused = f"{p}_BN_1/FusedBatchNormV3;model/BLOCK_1-1_CONV_1/Conv2D;{p}_CONV_1/Conv2D"
            nodes.append(conv(fused, x, f"{p}/h1", c, 12, rng, inits, stride=2 if (s, b) == (2, 1) else 1))
            nodes.append(helper.make_node("Relu", [f"{p}/h1"], [f"{p}/a1"], name=f"{p}_ACT_1/Relu"))
            nodes.append(conv(f"{p}_CONV_3/Conv2D", f"{p}/a1", f"{p}/h3", 12, width, rng, inits))
            out = f"{p}/h3"
            if b > 1:
                nodes.append(helper.make_node("Add", [x, out], [f"{p}/add"], name=f"{p}_ADD/add"))
                out = f"{p}/add"
            x, c = out, width
    nodes.append(conv("model/POST_CONV/Conv2D", x, "post", c, 16, rng, inits))
    nodes.append(helper.make_node("ReduceMean", ["post"], ["pooled"], name="model/GLOBAL_AVG_POOL/Mean",
                                  axes=[2, 3], keepdims=0))
    w = rng.standard_normal((16, 5)).astype(np.float32)
    inits.append(helper.make_tensor("dense/W", TensorProto.FLOAT, w.shape, w.ravel()))
    nodes.append(helper.make_node("MatMul", ["pooled", "dense/W"], ["logits"], name="model/DENSE/MatMul"))
    graph = helper.make_graph(
        nodes, "birdnet_like", [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def perch_like_unscoped_adds_model() -> onnx.ModelProto:
    """Perch-style scopes where the exporter left each residual Add outside its MBConv scope."""
    rng, inits, nodes = np.random.default_rng(1), [], []
    inits.append(helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 8, 8]))
    nodes.append(helper.make_node("Reshape", ["inputs", "shape"], ["spec"], name="jax2tf/Reshape"))
    nodes.append(conv("jax2tf/Stem_0/Conv2D", "spec", "stem", 1, 4, rng, inits))
    x, c = "stem", 4
    for i, (width, stride) in enumerate([(6, 1), (6, 1), (10, 2), (10, 1)]):
        p = f"jax2tf/MBConv_{i}/"
        nodes.append(conv(p + "ExpandConv/Conv2D", x, p + "h1", c, 12, rng, inits, stride=stride))
        nodes.append(helper.make_node("Relu", [p + "h1"], [p + "a1"], name=p + "Relu"))
        nodes.append(conv(p + "ProjectConv/Conv2D", p + "a1", p + "h3", 12, width, rng, inits))
        out = p + "h3"
        if c == width and stride == 1:
            nodes.append(helper.make_node("Add", [x, out], [f"add_{i}"], name=f"jax2tf/add_{i}"))
            out = f"add_{i}"
        x, c = out, width
    nodes.append(conv("jax2tf/Head_0/Conv2D", x, "head", c, 16, rng, inits))
    nodes.append(helper.make_node("ReduceMean", ["head"], ["embedding"], name="jax2tf/Mean", axes=[2, 3], keepdims=0))
    graph = helper.make_graph(
        nodes, "perch_like", [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_residual_add_outside_the_block_scope_is_still_the_block_output():
    _, inventory = expose_blocks(perch_like_unscoped_adds_model(), 64)
    blocks = inventory["blocks"]
    assert [b["tensor"] for b in blocks] == ["jax2tf/MBConv_0/h3", "add_1", "jax2tf/MBConv_2/h3", "add_3"]
    assert [b["residual"] for b in blocks] == [False, True, False, True]
    assert [b["stage"] for b in blocks] == [1, 1, 2, 2]
    assert [b["spatial"] for b in blocks] == [[8, 8], [8, 8], [4, 4], [4, 4]]


def test_original_outputs_unchanged_and_new_outputs_finite():
    model, spec = fixture_model()
    probed, inventory = expose_blocks(model, 160000, "embedding")
    onnx.checker.check_model(probed, full_check=True)
    x = np.random.default_rng(2).uniform(-0.25, 0.25, (2, 160000)).astype(np.float32)
    before, after = run_all(model, x), run_all(probed, x)
    assert list(after)[:len(before)] == list(before)  # original outputs first, same order
    for name, value in before.items():
        np.testing.assert_allclose(after[name], value, rtol=0, atol=1e-6, err_msg=name)
    new = [n for n in after if n not in before]
    assert new == [f"block_{i:02d}" for i in range(26)]
    for b in inventory["blocks"]:
        v = after[b["name"]]
        assert v.shape == (2, b["channels"]) and v.dtype == np.float32
        assert np.all(np.isfinite(v)), b["name"]


def test_pooled_output_is_the_spatial_mean_of_the_block_tensor():
    model, _ = fixture_model()
    probed, inventory = expose_blocks(model, 160000, "embedding")
    block = inventory["blocks"][21]
    raw = onnx.ModelProto.FromString(model.SerializeToString())
    raw.graph.output.append(onnx.ValueInfoProto(name=block["tensor"]))
    x = np.random.default_rng(3).uniform(-0.25, 0.25, (1, 160000)).astype(np.float32)
    tensor = run_all(raw, x)[block["tensor"]]
    assert tensor.shape == (1, *block["spatial"], block["channels"])  # Perch's [B, T, F, C]
    np.testing.assert_allclose(run_all(probed, x)[block["name"]], tensor.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_surgery_is_idempotent_and_deterministic():
    model, _ = fixture_model()
    once, inv1 = expose_blocks(model, 160000, "embedding")
    twice, inv2 = expose_blocks(once, 160000, "embedding")
    again, _ = expose_blocks(model, 160000, "embedding")
    assert twice.SerializeToString() == once.SerializeToString()
    assert again.SerializeToString() == once.SerializeToString()
    assert inv1 == inv2


def test_selected_blocks_only():
    model, _ = fixture_model()
    probed, inventory = expose_blocks(model, 160000, "embedding", requested=[24, 21, 25])
    assert [b["name"] for b in inventory["blocks"]] == ["block_21", "block_24", "block_25"]
    assert inventory["n_found"] == 26
    assert [o.name for o in probed.graph.output][-3:] == ["block_21", "block_24", "block_25"]


def test_requested_block_that_does_not_exist_lists_the_blocks_found():
    model, _ = fixture_model()
    with pytest.raises(SurgeryError, match=r"\[26\] do not exist.*0 \(MBConv_0\).*25 \(MBConv_25\)"):
        expose_blocks(model, 160000, "embedding", requested=[3, 26])


def test_graph_without_blocks_is_an_error():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(SurgeryError, match="no MBConv blocks found.*blocks found: none"):
        expose_blocks(model, 8)


def test_unknown_embedding_tensor_is_an_error():
    model, _ = fixture_model()
    with pytest.raises(SurgeryError, match="'nope' is not in the graph"):
        expose_blocks(model, 160000, "nope")


def test_birdnet_names_nchw_and_internal_embedding():
    model = birdnet_like_model()
    probed, inventory = expose_blocks(model, 64, "pooled")
    assert inventory["rule"] == "birdnet" and inventory["layout"] == "NCHW"
    blocks = inventory["blocks"]
    assert [b["scope"] for b in blocks] == ["BLOCK_1-1", "BLOCK_1-2", "BLOCK_2-1", "BLOCK_2-2"]
    assert [b["stage"] for b in blocks] == [1, 1, 2, 2]
    assert [b["residual"] for b in blocks] == [False, True, False, True]
    assert [b["channels"] for b in blocks] == [6, 6, 10, 10]
    assert [b["spatial"] for b in blocks] == [[8, 8], [8, 8], [4, 4], [4, 4]]
    assert blocks[0]["tensor"] == "model/BLOCK_1-1/h3" and blocks[1]["tensor"] == "model/BLOCK_1-2/add"
    assert inventory["embedding_channels"] == 16
    assert [o.name for o in probed.graph.output] == ["logits", "pooled", "block_00", "block_01", "block_02", "block_03"]
    check = compare_outputs(model, probed, 64)
    assert check["max_abs_diff"]["logits"] <= 1e-6
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    out = run_all(probed, x)
    assert out["pooled"].shape == (3, 16) and out["block_02"].shape == (3, 10)
    twice, _ = expose_blocks(probed, 64, "pooled")
    assert twice.SerializeToString() == probed.SerializeToString()


def birdnet_onnx() -> Path:
    """The checkpoint stage's converted BirdNET V2.4 (converted once, then cached by birdclef_eos.backbone.birdnet)."""
    from birdclef_eos.backbone import birdnet
    from stages.params import load_params

    params = load_params()
    try:
        return birdnet.prepare(params["backbone"]["birdnet"], Path(params["runtime"]["cache_dir"]).expanduser())["onnx"]
    except FileNotFoundError as exc:
        if "conversion environment" in str(exc):
            pytest.skip(f"BirdNET conversion environment absent: {exc}")
        raise


def test_birdnet_v24_has_16_blocks_in_4_stages():
    from birdclef_eos.backbone import birdnet

    path = birdnet_onnx()
    model = onnx.load(str(path))
    probed, inventory = expose_blocks(model, birdnet.WINDOW_SAMPLES, birdnet.EMBEDDING_OUTPUT)
    blocks = inventory["blocks"]
    assert inventory["rule"] == "birdnet" and inventory["layout"] == "NCHW" and len(blocks) == 16
    stages = [b["stage"] for b in blocks]
    assert [stages.count(s) for s in range(1, 5)] == BIRDNET_STAGE_BLOCKS
    assert all(b["channels"] == BIRDNET_WIDTHS[b["stage"] - 1] for b in blocks)
    assert [b["residual"] for b in blocks if b["stage"] == 2] == [False, True, True, True]
    assert inventory["embedding_channels"] == 1024
    check = compare_outputs(model, probed, birdnet.WINDOW_SAMPLES)
    assert max(check["max_abs_diff"].values()) <= 1e-4
