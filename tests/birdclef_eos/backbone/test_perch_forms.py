"""Perch v2 as users have it, on the Perch-shaped fixture: the same blocks found by structure in
every form (scoped names, meaningless names, a TF SavedModel converted to ONNX, the DFT-op form),
the DFT and no-DFT forms giving the same features, and the behavioural fingerprint."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from birdclef_eos.backbone import fingerprint as fp
from birdclef_eos.backbone.frontend import FrontendRunner, make_session, resolve
from birdclef_eos.backbone.perch import PerchFormError, check_form
from birdclef_eos.backbone.surgery import expose_blocks
from tests.fakes.backbone_fixtures import perch_tiny, perch_tiny_form, perch_tiny_saved_model

FIXTURE_WIDTHS = [6, 8, 12, 24, 34, 58, 96]  # Perch's 24..384 at width 0.25
PERCH_STAGE_BLOCKS = [2, 3, 3, 5, 5, 6, 2]


def shape_of(inventory):
    return [(b["index"], b["stage"], b["channels"], tuple(b["spatial"]), b["residual"]) for b in inventory["blocks"]]


def inventory(path):
    return expose_blocks(onnx.load(str(path)), 160000, "embedding")[1]


def test_the_three_forms_give_the_same_26_blocks():
    scoped = inventory(perch_tiny()[0])
    opaque = inventory(perch_tiny_form("opaque"))
    converted = inventory(perch_tiny_saved_model()[1])
    assert scoped["rule"] == "perch"            # names confirmed by structure
    assert opaque["rule"] == "structure"        # names say nothing
    assert converted["rule"] == "structure"     # tf2onnx names the projection convs Conv__c<k>: structure wins
    assert "names_disagree" in converted
    for inv in (scoped, opaque, converted):
        stages = [b["stage"] for b in inv["blocks"]]
        assert inv["n_found"] == 26
        assert [stages.count(s) for s in range(1, 8)] == PERCH_STAGE_BLOCKS
        assert sorted({b["channels"] for b in inv["blocks"]}) == FIXTURE_WIDTHS
    assert shape_of(opaque) == shape_of(scoped) == shape_of(converted)
    assert [b["residual"] for b in scoped["blocks"]].count(False) == 7  # the first block of each stage


def test_savedmodel_conversion_matches_tensorflow():
    report = perch_tiny_saved_model()[2]
    assert set(report) >= {"label/noise", "embedding/chirp", "spectrogram/tone"}
    assert max(report.values()) <= 1e-3


def test_dft_form_is_found_alike_and_gives_the_same_features():
    """The ONNX DFT form through the numpy DFT cut (frontend auto) against the no-DFT form run whole:
    every output within 1e-4 of its largest magnitude (measured: 3.5e-5 at most, on the tone)."""
    no_dft, _ = expose_blocks(onnx.load(str(perch_tiny()[0])), 160000, "embedding")
    dft, inv = expose_blocks(onnx.load(str(perch_tiny_form("onnx"))), 160000, "embedding")
    assert shape_of(inv) == shape_of(inventory(perch_tiny()[0]))
    assert resolve(dft, "auto") == "dft" and resolve(no_dft, "auto") == "graph"
    x = np.stack(list(fp.signals(160000, 32000).values()))
    names = [o.name for o in no_dft.graph.output]
    whole = dict(zip(names, make_session(no_dft, 1).run(names, {"inputs": x})))
    runner = FrontendRunner(dft, "dft", 160000, lambda part, t: make_session(part, t or 1))
    cut = dict(zip(names, runner.run(names, runner.prepare(x))))
    for name in names:
        scale = np.abs(whole[name]).max()
        assert np.abs(cut[name] - whole[name]).max() <= 1e-4 * scale, name


def test_form_check_says_which_format_to_choose():
    check_form(onnx.load(str(perch_tiny_form("onnx"))), "onnx", "x")
    check_form(onnx.load(str(perch_tiny()[0])), "onnx_no_dft", "x")
    with pytest.raises(PerchFormError, match="format: onnx_no_dft"):
        check_form(onnx.load(str(perch_tiny()[0])), "onnx", "x")
    with pytest.raises(PerchFormError, match="format: onnx$"):
        check_form(onnx.load(str(perch_tiny_form("onnx"))), "onnx_no_dft", "x")


@pytest.fixture(scope="module")
def fixture_fingerprint():
    path, spec = perch_tiny()
    return fp.record(path, spec, ["label", "embedding"])


def with_block_weights_scaled(path, tmp_path, block=21, factor=1.5):
    model = onnx.load(str(path))
    name = f"MBConv_{block}.ProjectConv.conv.weight"
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * factor, name))
    out = tmp_path / "changed.onnx"
    onnx.save(model, str(out))
    return out


def test_fingerprint_accepts_the_same_model_in_other_bytes(fixture_fingerprint):
    assert fixture_fingerprint["inventory"] == {"n_blocks": 26, "stage_blocks": PERCH_STAGE_BLOCKS,
                                                "widths": FIXTURE_WIDTHS}
    for other in (perch_tiny_form("opaque"), perch_tiny_form("onnx"), perch_tiny_saved_model()[1]):
        assert other.read_bytes() != perch_tiny()[0].read_bytes()
        report = fp.check(other, fixture_fingerprint)
        assert report["checks"] == {"interface": "passed", "inventory": "passed", "outputs": "passed"}
        assert max(report["max_rel_diff"].values()) <= 1e-3  # measured: 0 (opaque), 3e-6 (SavedModel), 3.3e-4 (ORT float32 DFT)


def test_fingerprint_rejects_one_changed_block_naming_the_check(fixture_fingerprint, tmp_path):
    changed = with_block_weights_scaled(perch_tiny()[0], tmp_path)
    with pytest.raises(fp.FingerprintError, match="check 'outputs' failed: output 'label' on signal 'noise'") as err:
        fp.check(changed, fixture_fingerprint)
    assert err.value.check == "outputs"


def test_fingerprint_rejects_another_architecture_and_interface(fixture_fingerprint):
    wrong = dict(fixture_fingerprint, inventory=dict(fixture_fingerprint["inventory"], widths=[24, 32, 48, 96, 136, 232, 384]))
    with pytest.raises(fp.FingerprintError, match="check 'inventory' failed: widths"):
        fp.check(perch_tiny()[0], wrong)
    wrong = dict(fixture_fingerprint, interface=dict(fixture_fingerprint["interface"], outputs={"label": 14795}))
    with pytest.raises(fp.FingerprintError, match="check 'interface' failed: output 'label' has width 32, expected 14795"):
        fp.check(perch_tiny()[0], wrong)


def test_fingerprint_without_outputs_checks_interface_and_inventory(fixture_fingerprint):
    report = fp.check(perch_tiny_form("opaque"), dict(fixture_fingerprint, outputs={}))
    assert report["checks"]["outputs"].startswith("not recorded")
