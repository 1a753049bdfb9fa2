"""base.source: file - a malformed submission.csv is named."""
import json

import pandas as pd
import pytest

from birdclef_eos.scoring.submission import SubmissionError
from stages import base


def params(tmp_path, file):
    return {"base": {"source": "file", "file": str(file), "blend": {"protossm": 0.6, "sed": 0.4},
                     "postprocess": {}, "variants": {}, "reference": "attn", "reference_tta": [0.0], "bootstrap": 10,
                     "confidence": 0.95, "seed": 0},
            "postprocess": {k: 0.0 for k in ("prior_alpha", "sigma", "rank_power", "neighbour_base",
                                             "tax_genus_alpha", "tax_class_alpha")}
            | {"prior_k_hour": 8.0, "prior_k_site": 8.0, "prior_k_site_hour": 4.0, "prior_clip": 1e-4,
               "prior_relative": False, "smooth_mode": "nearest", "smooth_space": "logit", "smooth_truncate": 4.0,
               "tta_space": "prob"},
            "train": {"n_folds": 2, "fold_salt": "s"}}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/index").mkdir(parents=True)
    (tmp_path / "data/hidden").mkdir(parents=True)
    pd.DataFrame({"label_idx": [0, 1], "primary_label": ["a", "b"], "genus": ["g", "g"],
                  "class_name": ["Aves", "Aves"]}).to_csv(tmp_path / "data/index/species.csv", index=False)
    pd.DataFrame({"row_id": ["s1_5", "s1_10"], "soundscape_id": ["s1", "s1"], "chunk": [0, 1], "split": ["test"] * 2,
                  "site": ["S1"] * 2, "hour": [6, 6], "labels": ["", ""]}).to_csv(tmp_path / "data/index/chunks.csv", index=False)
    pd.DataFrame({"row_id": ["s1_5", "s1_10"], "a": [0.0, 0.0], "b": [0.0, 0.0]}).to_csv(
        tmp_path / "data/hidden/sample_submission.csv", index=False)
    return tmp_path


def test_a_good_file_is_taken_with_its_sha256(tree):
    f = tree / "chain.csv"
    pd.DataFrame({"row_id": ["s1_10", "s1_5"], "a": [0.2, 0.1], "b": [0.3, 0.4]}).to_csv(f, index=False)
    r = base.run(params(tree, f))
    assert r.manifest["source"] == "file" and str(f) in r.manifest["sha256"]
    assert pd.read_csv(tree / "submissions/base/submission.csv")["row_id"].tolist() == ["s1_5", "s1_10"]
    parts = json.loads((tree / "predictions/oof/base/parts.json").read_text())  # a file has no OOF to choose on
    assert parts["oof"] is None and "base.source: file" in parts["why"]
    assert sorted(p.name for p in (tree / "predictions/oof/base").iterdir()) == ["parts.json"]


@pytest.mark.parametrize("frame,message", [
    (pd.DataFrame({"row_id": ["s1_5", "s1_10"], "a": [0.1, 0.2]}), r"missing column\(s\) \['b'\]"),
    (pd.DataFrame({"row_id": ["s1_5", "s1_99"], "a": [0.1, 0.2], "b": [0.1, 0.2]}), r"wrong row ids"),
    (pd.DataFrame({"row_id": ["s1_5", "s1_10"], "a": [0.1, "x"], "b": [0.1, 0.2]}), r"column 'a' is not numeric \(row 's1_10'\)"),
])
def test_a_malformed_file_is_named(tree, frame, message):
    f = tree / "chain.csv"
    frame.to_csv(f, index=False)
    with pytest.raises(SubmissionError, match=r"chain.csv: " + message):
        base.run(params(tree, f))


def test_a_missing_file_is_named(tree):
    with pytest.raises(base.BaseStageError, match="base.file = .*nope.csv"):
        base.run(params(tree, tree / "nope.csv"))


def test_variants_need_the_stand_in(tree):
    """A knob variant re-blends the stand-in's own models: with the real chain's file there are none."""
    f = tree / "chain.csv"
    pd.DataFrame({"row_id": ["s1_10", "s1_5"], "a": [0.2, 0.1], "b": [0.3, 0.4]}).to_csv(f, index=False)
    p = params(tree, f)
    p["base"]["variants"] = {"base_p065": {"postprocess": {"rank_power": 0.65}}}
    with pytest.raises(base.BaseStageError, match=r"base.variants.base_p065: .* set base.variants: \{\}"):
        base.run(p)
    assert not (tree / "submissions/base_p065").exists() and not (tree / "submissions/base").exists()
