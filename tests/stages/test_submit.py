"""predict@<name> (raw per-shift probabilities) and submit (every submission's post-processing) on the
tiny fake tree: the split keeps the bytes of one predict-and-post-process pass, a post-processing
change needs no new prediction, stale raw predictions are named, and dvc.yaml wires the two stages
so that `postprocess` reaches `submit` only."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.inference import predict_shifts
from birdclef_eos.scoring import postprocess, submission
from stages import predict, submit
from stages.params import load_params
from stages.paths import ROOT

from tests.fakes.predict_fakes import make_tree

DEFAULTS = load_params(ROOT / "params.yaml")
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


@pytest.fixture
def tree(tmp_path, monkeypatch):
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def params(**post):
    subs = {k: dict(DEFAULTS["submissions"][k]) for k in ("v1", "v2", "v6", "v7")}
    return {"postprocess": {**DEFAULTS["postprocess"], **post}, "submissions": subs}


def one_pass(tree, p, name):
    """What predict@<name> computed before the split: inference, TTA average and post-processing in one
    pass, written as pandas writes a submission."""
    entry = p["submissions"][name]
    knobs = postprocess.resolve_knobs(p["postprocess"], entry["postprocess"], name)
    species = pd.read_csv("data/index/species.csv", keep_default_na=False).sort_values("label_idx")
    labels = species["primary_label"].tolist()
    chunks = pd.read_csv("data/index/chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    models, config = heads.load_variant(tree / "models/heads" / entry["model"])
    names = [f"block_{i:02d}" for i in config["blocks"]]
    windows, arrays, _ = features.load(tree / "data/features", names=names)
    rows, per_shift = predict_shifts(models, windows, arrays, names, entry["tta"])
    probs = postprocess.postprocess(postprocess.average_shifts(per_shift, knobs.tta_space), rows, knobs,
                                    prior=postprocess.fit_prior(chunks, labels) if knobs.prior_alpha else None,
                                    species=species)
    order = submission.order_frame("data/hidden/sample_submission.csv", chunks, labels)
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    return sub.to_csv(index=False, float_format="%.6f").encode()


def test_submit_writes_the_bytes_of_one_predict_and_post_process_pass(tree):
    p = params()
    for name in p["submissions"]:
        predict.run(p, name)
    result = submit.run(p)
    assert set(result.submissions) == {"v1", "v2", "v6", "v7"}
    for name in p["submissions"]:
        assert (tree / f"submissions/{name}/submission.csv").read_bytes() == one_pass(tree, p, name), name
    manifest = json.loads((tree / "submissions/v6/manifest.json").read_text())
    assert "models/heads/attn/fold_1.pt" in manifest["sha256"] and "data/hidden/sample_submission.csv" in manifest["sha256"]
    assert manifest["postprocess"]["prior_alpha"] == 0.5 and manifest["tta"] == [-1.0, 0.0, 1.0]
    assert manifest["entry"] == p["submissions"]["v6"]
    assert result.submissions["v6"]["submission_sha256"] == manifest["submission_sha256"]
    raw = np.load(tree / "predictions/raw/v6/per_shift.npy")
    assert raw.shape == (3, 36, 4)


def test_a_post_processing_change_needs_no_new_prediction(tree):
    p = params()
    predict.run(p, "v6")
    raw = (tree / "predictions/raw/v6/per_shift.npy").read_bytes()
    submit.run(p, "v6")
    first = (tree / "submissions/v6/submission.csv").read_bytes()
    changed = params(prior_alpha=0.4)
    submit.run(changed, "v6")
    assert (tree / "submissions/v6/submission.csv").read_bytes() == one_pass(tree, changed, "v6") != first
    assert (tree / "predictions/raw/v6/per_shift.npy").read_bytes() == raw
    assert json.loads((tree / "submissions/v6/manifest.json").read_text())["postprocess"]["prior_alpha"] == 0.4


def test_submit_names_a_missing_or_stale_raw_prediction_and_an_unknown_knob(tree):
    p = params()
    with pytest.raises(FileNotFoundError, match=r"predictions/raw/v6/manifest.json: not found \(run predict@v6\)"):
        submit.run(p, "v6")
    predict.run(p, "v6")
    other = params()
    other["submissions"]["v6"]["tta"] = [0.0]
    with pytest.raises(submit.SubmitError, match=r"predictions/raw/v6/manifest.json: predicted with model 'attn', "
                                                 r"tta \[-1.0, 0.0, 1.0\].*tta \[0.0\].*dvc repro predict@v6"):
        submit.run(other, "v6")
    bad = params()
    bad["submissions"]["v6"]["postprocess"] = {"sigmaa": 2}
    with pytest.raises(ValueError, match=r"postprocess.PostprocessOverrides.sigmaa\n.*Extra inputs are not permitted"):
        submit.run(bad, "v6")
    with pytest.raises(submit.SubmitError, match="no submission 'v9'"):
        submit.run(p, "v9")


def test_dvc_yaml_keeps_postprocess_out_of_predict_and_submit_writes_every_submission():
    stage = DVC["stages"]["predict"]
    assert stage["foreach"] == "${submissions}"
    assert not any(str(p).startswith("postprocess") or p == "submissions.${key}" for p in stage["do"]["params"])
    assert "predictions/raw/${key}" in stage["do"]["outs"]
    assert not any(str(o).startswith("submissions/") for o in stage["do"]["outs"])
    sub = DVC["stages"]["submit"]
    assert {"postprocess", "submissions"} <= set(sub["params"])
    outs = [o for o in sub["outs"] if str(o).startswith("submissions/")]
    assert outs == [f"submissions/{k}" for k in DEFAULTS["submissions"]], \
        "dvc.yaml stage 'submit' must list one submissions/<name> output per `submissions:` entry, in order"
    assert str(predict.RAW_PREDICTIONS) in sub["deps"] and predict.RAW_PREDICTIONS == submit.RAW_PREDICTIONS


def test_a_submission_dvc_yaml_does_not_declare_is_refused_before_anything_is_written(tree):
    dvc_yaml = tree / "dvc.yaml"
    dvc_yaml.write_text(yaml.safe_dump({"stages": {"submit": {"outs": ["submissions/v6"]}}}))
    submit.check_declared(["v6"], dvc_yaml)
    with pytest.raises(submit.SubmitError, match=r"submissions.v7: .*dvc.yaml stage 'submit' does not list "
                                                 r"submissions/v7 among its outs"):
        submit.check_declared(["v6", "v7"], dvc_yaml)
