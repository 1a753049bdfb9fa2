"""The blend stage on a fake tree: every `blends:` entry written as a submission, the shared weight
resolved for each entry that names it, and dvc.yaml listing exactly the blends' parts and outputs."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from stages import blend
from stages.params import load_params
from stages.paths import ROOT

from tests.fakes.predict_fakes import LABELS, make_tree, write_base_oof

DEFAULTS = load_params(ROOT / "params.yaml")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    sample = pd.read_csv(tmp_path / "data/hidden/sample_submission.csv")
    rng = np.random.default_rng(3)
    for name in ("base", "alt", "v6"):
        sub = sample.copy()
        sub[LABELS] = rng.random((len(sub), len(LABELS)))
        (tmp_path / "submissions" / name).mkdir(parents=True)
        sub.to_csv(tmp_path / f"submissions/{name}/submission.csv", index=False)
    train = tmp_path / "build/metrics/train/attn"  # Figure 3's standalone head
    train.mkdir(parents=True)
    (train / "metrics.json").write_text(json.dumps({"head": "attention", "blocks": [12, 13, 14], "folds": [{}] * 5}))
    return tmp_path


def params(weight=0.07):
    return {"blend": {**DEFAULTS["blend"], "weight": weight, "space": "prob", "taxonomy": {"genus": 0.15, "class": 0.05}},
            "blends": {"eos7": {"parts": {"base": "rest", "v6": "weight"}, "taxonomy": True},
                       "anchor": {"parts": {"alt": 0.1, "base": "rest"}},
                       "eos9": {"parts": {"anchor": "rest", "v6": "weight"}, "taxonomy": True, "space": "rank"}},
            "figures": {"pipelines": {"standalone": "v6", "blend": "eos7"}},
            "submissions": {"v6": DEFAULTS["submissions"]["v6"]}, "postprocess": dict(DEFAULTS["postprocess"]),
            "backbone": {"name": "birdnet_v24"}}


def read(tree, name):
    return pd.read_csv(tree / f"submissions/{name}/submission.csv")


def test_every_blend_is_a_submission_with_its_resolved_weights(tree):
    result = blend.run(params())
    assert list(result.blends) == ["eos7", "anchor", "eos9"]
    manifest = json.loads((tree / "submissions/eos9/manifest.json").read_text())
    assert manifest["weights"] == pytest.approx({"anchor": 0.93, "v6": 0.07}) and manifest["space"] == "rank"
    assert set(manifest["parts"]) == {"anchor", "v6"} and manifest["parts"]["anchor"] == result.blends["anchor"]["submission_sha256"]
    sample = pd.read_csv(tree / "data/hidden/sample_submission.csv")
    for name in result.blends:
        sub = read(tree, name)
        assert list(sub.columns) == list(sample.columns) and list(sub.row_id) == list(sample.row_id)
    anchor = read(tree, "anchor")
    np.testing.assert_allclose(anchor[LABELS], 0.1 * read(tree, "alt")[LABELS] + 0.9 * read(tree, "base")[LABELS], atol=1e-6)
    drawn = json.loads((tree / "build/metrics/blend/pipelines.json").read_text())  # Figure 3, weights in force
    assert drawn["weights"] == {"base": 0.93, "v6": 0.07} and result.weights == drawn["weights"]
    assert (tree / "build/figures/pipelines.png").stat().st_size > 10_000
    first = (tree / "submissions/eos7/submission.csv").read_bytes()
    blend.run(params())
    assert (tree / "submissions/eos7/submission.csv").read_bytes() == first


def test_the_shared_weight_moves_every_entry_that_names_it(tree):
    blend.run(params(0.07))
    before = {n: read(tree, n) for n in ("eos7", "anchor", "eos9")}
    blend.run(params(0.3))
    assert json.loads((tree / "submissions/eos7/manifest.json").read_text())["weights"]["v6"] == pytest.approx(0.3)
    assert not np.allclose(before["eos7"][LABELS], read(tree, "eos7")[LABELS])
    assert not np.allclose(before["eos9"][LABELS], read(tree, "eos9")[LABELS])
    np.testing.assert_allclose(before["anchor"][LABELS], read(tree, "anchor")[LABELS])  # names no shared weight


def test_a_missing_part_is_named(tree):
    p = params()
    p["blends"]["eos7"]["parts"] = {"base": "rest", "v6_residual": "weight"}
    with pytest.raises(ValueError, match=r"submissions/v6_residual/submission.csv: missing"):
        blend.run(p)
    assert not (tree / "submissions/eos7").exists()


def test_dvc_yaml_lists_every_part_and_every_blend():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["blend"]
    entries = DEFAULTS["blends"]
    outs = {o for o in stage["outs"] if isinstance(o, str) and o.startswith("submissions/")}
    assert outs == {f"submissions/{n}" for n in entries}, "dvc.yaml blend outs must be one per `blends:` entry"
    parts = {p for e in entries.values() for p in [*e["parts"], *([e["sidecar"]["submission"]] if "sidecar" in e else [])]
             if p not in entries}
    deps = {d for d in stage["deps"] if d.startswith("submissions/")}
    assert deps == {f"submissions/{p}" for p in parts}, "dvc.yaml blend deps must be the blends' parts"


def test_a_sidecar_entry_corrects_the_blend_in_rank_space(tree):
    p = params()
    p["blends"]["eos10"] = {"parts": {"eos7": "rest"},
                            "sidecar": {"submission": "alt", "weight": 0.5, "top_k": 1, "threshold": 0.5,
                                        "threshold_space": "rank", "budget": None}}
    result = blend.run(p)
    assert list(result.blends)[-1] == "eos10"
    eos7, eos10 = read(tree, "eos7")[LABELS].to_numpy(), read(tree, "eos10")[LABELS].to_numpy()
    from birdclef_eos.scoring.blend import rank_columns
    from birdclef_eos.scoring.sidecar import correct
    want = correct(eos7, read(tree, "alt")[LABELS].to_numpy(), weight=0.5, top_k=1, threshold=0.5, budget=None).blended
    np.testing.assert_allclose(eos10, want, atol=1e-6)
    moved = np.abs(eos10 - rank_columns(eos7)) > 1e-6
    assert moved.any() and (moved.sum(axis=1) <= 1).all()  # top_k 1: at most one class per chunk moves
    assert json.loads((tree / "submissions/eos10/manifest.json").read_text())["sidecar"]["submission"] == "alt"


def oof_params(weight=0.3):
    p = params(weight)
    p["blend"].update(space="oof", bootstrap=30, seed=0, confidence=0.95)
    return p


def test_space_oof_chooses_on_the_base_oof_and_every_manifest_carries_the_choice(tree):
    write_base_oof(tree)
    result = blend.run(oof_params())
    written = json.loads((tree / "build/metrics/blend/blend.json").read_text())
    oof = written["space_on_oof"]
    assert oof["reference"] == "attn" and oof["rows"] == 24
    assert oof["chosen"] == ("rank" if oof["rank"]["macro_auc"] > oof["prob"]["macro_auc"] else "prob")
    assert oof["chosen"] == "rank"  # the head carries the signal, and only rank space hears it
    assert written["shared"]["space"] == "rank"
    eos7 = json.loads((tree / "submissions/eos7/manifest.json").read_text())
    assert eos7["space"] == "rank" and eos7["shared"] == {"weight": 0.3, "space": "rank",
                                                          "taxonomy": {"genus": 0.15, "class": 0.05}}
    assert result.blends["eos9"]["space"] == "rank"  # an entry's own space still wins
    fixed = params(0.3)
    fixed["blend"]["space"] = "rank"
    blend.run(fixed)  # the chosen space gives the same bytes as setting it by hand
    assert json.loads((tree / "submissions/eos7/manifest.json").read_text())["submission_sha256"] == eos7["submission_sha256"]


def test_space_oof_without_a_base_oof_names_the_knob(tree):
    folder = tree / "predictions/oof/base"
    folder.mkdir(parents=True)
    (folder / "parts.json").write_text(json.dumps({"oof": None, "why": "base.source: file"}))
    with pytest.raises(ValueError, match=r"parts.json: no OOF .*set blend.space to prob or rank"):
        blend.run(oof_params())
    assert not (tree / "submissions/eos7").exists()
