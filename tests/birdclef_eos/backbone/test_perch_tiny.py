"""The Perch-v2-shaped fixture: interface, names, size, determinism, and what surgery finds in it."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from birdclef_eos.backbone.surgery import expose_blocks
from birdclef_eos.backbone.perch_tiny import STAGE_WIDTHS, build_perch_tiny, export_perch_tiny
from tests.fakes.backbone_fixtures import SEED, WIDTH, perch_tiny, probed_perch_tiny

PERCH_STAGE_BLOCKS = [2, 3, 3, 5, 5, 6, 2]                     # facts.md section 5
PERCH_SPATIAL = [(250, 64), (125, 32), (63, 16), (32, 8), (32, 8), (16, 4), (16, 4)]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_interface_matches_perch():
    path, spec = perch_tiny()
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["inputs"]
    assert spec["sample_rate"] == 32000 and spec["window_samples"] == 160000
    x = np.random.default_rng(0).uniform(-0.25, 0.25, (2, 160000)).astype(np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"inputs": x})))
    e = out["embedding"].shape[1]
    assert out["label"].shape == (2, len(spec["classes"]))
    assert out["spatial_embedding"].shape == (2, 16, 4, e)
    assert out["spectrogram"].shape == (2, 500, 128)
    assert e == round(1536 * WIDTH)
    assert all(np.all(np.isfinite(v)) for v in out.values())


def test_scopes_named_like_perch_and_small():
    path, _ = perch_tiny()
    names = [n.name for n in onnx.load(str(path)).graph.node]
    for i in range(26):
        assert any(f"/MBConv_{i}/" in n for n in names), f"no node in scope MBConv_{i}"
    assert not any("/MBConv_26/" in n for n in names)
    assert any("/Head_0/" in n for n in names)
    assert path.stat().st_size < 5_000_000


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    path, _ = perch_tiny()
    again = tmp_path / "again.onnx"
    export_perch_tiny(again, SEED, WIDTH)
    assert again.read_bytes() == path.read_bytes()
    a, b = build_perch_tiny(1, 0.125, 4).state_dict(), build_perch_tiny(2, 0.125, 4).state_dict()
    assert not torch.equal(a["MBConv_3.ProjectConv.conv.weight"], b["MBConv_3.ProjectConv.conv.weight"])


def test_bad_width_multiplier(tmp_path):
    with pytest.raises(ValueError, match="width_multiplier"):
        export_perch_tiny(tmp_path / "x.onnx", 0, 1.5)


def test_surgery_finds_perchs_26_blocks_stages_and_spatial_sizes():
    path, spec = perch_tiny()
    _, inventory = expose_blocks(onnx.load(str(path)), spec["window_samples"], spec["embedding_output"])
    blocks = inventory["blocks"]
    assert inventory["rule"] == "perch" and inventory["layout"] == "NHWC"
    assert [b["scope"] for b in blocks] == [f"MBConv_{i}" for i in range(26)]
    stages = [b["stage"] for b in blocks]
    assert [stages.count(s) for s in range(1, 8)] == PERCH_STAGE_BLOCKS
    for block in blocks:
        s = block["stage"] - 1
        assert tuple(block["spatial"]) == PERCH_SPATIAL[s], block
        assert block["channels"] == round(STAGE_WIDTHS[s] * WIDTH), block
    firsts = [b["index"] for b in blocks if not b["residual"]]
    assert firsts == [0, 2, 5, 8, 13, 18, 24]  # the first block of each stage has no residual add
    assert [b["index"] for b in blocks if b["stage"] == 6] == list(range(18, 24))


def test_block_features_have_a_usable_scale():
    probed, _, _ = probed_perch_tiny()
    sess = session(probed)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 160000)).astype(np.float32) * rng.uniform(0.05, 1, (4, 1)).astype(np.float32)
    x = 0.25 * (x - x.mean(1, keepdims=True)) / np.abs(x).max(1, keepdims=True)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"inputs": x})))
    for i in range(26):
        v = out[f"block_{i:02d}"]
        scale = float(np.abs(v).mean())
        assert 1e-2 < scale < 1e2, f"block_{i:02d} mean |feature| {scale:g}: calibration failed"
        assert float(v.std(axis=0).mean()) > 1e-3, f"block_{i:02d} does not vary between inputs"
