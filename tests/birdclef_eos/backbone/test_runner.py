"""The backbone runner: normalisation, resampling, chunk mapping, batching and errors."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy.signal import resample_poly

from birdclef_eos.backbone.runner import Backbone, BackboneError, normalise_audio, window_offsets
from tests.fakes.backbone_fixtures import probed_perch_tiny, workdir


def direct(probed, x: np.ndarray) -> dict:
    """The probed graph run by hand on already prepared model inputs."""
    sess = ort.InferenceSession(str(probed), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"inputs": x.astype(np.float32)})))


def assert_close(actual, expected, what=""):
    """Equal up to float noise (the network amplifies last-bit differences of its input)."""
    scale = float(np.abs(expected).max())
    assert actual.shape == expected.shape, what
    assert float(np.abs(actual - expected).max()) <= 1e-3 * scale, what


def perch(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return 0.25 * x / np.abs(x).max(axis=1, keepdims=True)


def chunks(n: int, samples: int = 160000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 32000
    x = 0.3 * rng.standard_normal((n, samples)) + np.sin(2 * np.pi * rng.uniform(500, 8000, (n, 1)) * t) + 0.2
    return x.astype(np.float32)


def runner(**kwargs) -> Backbone:
    probed, spec, blocks = probed_perch_tiny()
    return Backbone(probed, spec, blocks, **{"threads": 1, "batch_size": 16, "chunk_mapping": "center",
                                            "input_rate": 32_000, "progress": False, **kwargs})


def test_perch_normalisation():
    x = np.stack([np.linspace(-1, 3, 100), np.zeros(100)]).astype(np.float32)
    y = normalise_audio(x, "perch")
    assert abs(y[0].mean()) < 1e-6 and abs(np.abs(y[0]).max() - 0.25) < 1e-6
    assert np.all(y[1] == 0)  # silence stays silence, no division by zero
    assert np.array_equal(normalise_audio(x, "none"), x)
    with pytest.raises(BackboneError, match="unknown normalisation 'loud'"):
        normalise_audio(x, "loud")


def test_window_offsets():
    assert window_offsets(240000, 144000, "center") == [48000]   # BirdNET: the middle 3 s of 5 s
    assert window_offsets(240000, 144000, "mean") == [0, 96000]  # [0, 3] and [2, 5]
    assert window_offsets(160000, 160000, "mean") == [0]         # Perch: identity
    with pytest.raises(BackboneError, match="shorter than the model window"):
        window_offsets(100, 160000, "center")
    with pytest.raises(BackboneError, match="unknown chunk_mapping 'edge'"):
        window_offsets(240000, 144000, "edge")


def test_features_match_the_graph_on_normalised_input():
    run = runner(threads=2)
    assert run.session.get_session_options().intra_op_num_threads == 2
    x = chunks(5)
    out = run.features(x).arrays()
    assert list(out) == run.block_names + ["embedding", "logits"]
    assert run.block_names == [f"block_{i:02d}" for i in range(26)]
    expected = direct(probed_perch_tiny()[0], perch(x))
    for key, value in out.items():
        assert value.dtype == np.float32 and value.shape == (5, run.channels[key]), key
        assert_close(value, expected[{"logits": "label"}.get(key, key)], key)


def test_a_wrong_normalisation_would_be_caught():
    x = chunks(3)
    out = runner().features(x).arrays()
    raw = direct(probed_perch_tiny()[0], x)  # skipping the normalisation changes the features
    with pytest.raises(AssertionError):
        assert_close(out["block_20"], raw["block_20"])


def test_resamples_to_the_model_rate():
    x = chunks(3, samples=80000)  # 5 s at 16 kHz
    out = runner(input_rate=16000).features(x).arrays()
    expected = direct(probed_perch_tiny()[0], perch(resample_poly(x, 2, 1, axis=1)))
    assert_close(out["block_20"], expected["block_20"])
    assert_close(out["logits"], expected["label"])


def three_second_model(tmp_path):
    """The fixture with a free input length, declared as a 3-s model (like BirdNET's window)."""
    probed, spec, blocks = probed_perch_tiny()
    model = onnx.load(str(probed))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "samples"
    onnx.save(model, str(tmp_path / "free.onnx"))
    meta = json.loads(spec.read_text())
    meta["window_samples"] = 96000
    (tmp_path / "backbone.json").write_text(json.dumps(meta))
    return tmp_path / "free.onnx", tmp_path / "backbone.json", blocks


@pytest.mark.parametrize("mapping", ["center", "mean"])
def test_chunk_mapping_onto_a_shorter_window(tmp_path, mapping):
    probed, spec, blocks = three_second_model(tmp_path)
    x = chunks(4)
    out = Backbone(probed, spec, blocks, threads=1, batch_size=3, chunk_mapping=mapping, input_rate=32_000,
                   progress=False).features(x).arrays()
    if mapping == "center":
        expected = direct(probed, perch(x[:, 32000:128000]))["block_25"]
    else:
        expected = (direct(probed, perch(x[:, :96000]))["block_25"] + direct(probed, perch(x[:, 64000:]))["block_25"]) / 2
    assert_close(out["block_25"], expected)


def test_batching_does_not_change_features():
    x = chunks(7, seed=3)
    a = runner(batch_size=3).features(x).arrays()
    b = runner(batch_size=16).features(x).arrays()
    for key in a:
        assert_close(a[key], b[key], key)


def test_block_subset_and_errors():
    run = runner(blocks=[21, 24])
    assert run.block_names == ["block_21", "block_24"]
    out = run.features(chunks(2))
    assert set(out.blocks) == {"block_21", "block_24"} and set(out.arrays()) == {"block_21", "block_24", "embedding", "logits"}
    with pytest.raises(BackboneError, match=r"blocks \['block_30'\] not in the probed graph"):
        runner(blocks=[30])
    bad = chunks(3)
    bad[1, 10] = np.nan
    with pytest.raises(BackboneError, match="window row 1"):
        run.features(bad)
    with pytest.raises(BackboneError, match=r"\[N, samples\]"):
        run.features(bad[0])
    with pytest.raises(BackboneError, match="shorter than the model window"):
        run.features(chunks(2, samples=32000))
    assert run.features(np.zeros((0, 160000), np.float32)).blocks["block_21"].shape == (0, 58)


def test_missing_inventory_file_is_named():
    probed, spec, _ = probed_perch_tiny()
    with pytest.raises(BackboneError, match="nowhere.json"):
        Backbone(probed, spec, workdir() / "nowhere.json", threads=1, batch_size=1, chunk_mapping="center",
                 input_rate=32_000)


@pytest.mark.parametrize("mapping,offsets", [("center", [32000]), ("mean", [0, 64000])])
def test_span_resampling_equals_resampling_the_whole_chunk(tmp_path, mapping, offsets):
    probed, spec, blocks = three_second_model(tmp_path)  # 3 s at 32 kHz; chunks come at 16 kHz
    run = Backbone(probed, spec, blocks, threads=1, batch_size=16, chunk_mapping=mapping, input_rate=16000,
                   progress=False)
    x = chunks(3, samples=80000)
    whole = resample_poly(x, 2, 1, axis=1)
    expected = np.stack([perch(whole[:, o:o + 96000]) for o in offsets], axis=1).reshape(-1, 96000)
    got, k = run.model_windows(x)
    assert k == len(offsets)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert (run.input_spans(80000) is None) == (mapping == "mean")  # mean needs the whole chunk
