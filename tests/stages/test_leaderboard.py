"""The predict and leaderboard stages on a tiny fake tree, and the board functions by hand."""
import json

import pandas as pd
import pytest

from birdclef_eos.scoring import boards
from stages import leaderboard
from stages import predict, submit
from stages.params import load_params
from stages.paths import ROOT

from tests.fakes.predict_fakes import make_tree, write_features
import numpy as np

DEFAULTS = load_params(ROOT / "params.yaml")


def predict_and_submit(p, name):
    """predict@<name> (raw probabilities), then submit for that one submission (post-processing)."""
    predict.run(p, name)
    return submit.run(p, name)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def params(**extra):
    subs = {k: DEFAULTS["submissions"][k] for k in ("v1", "v2", "v6", "v7")}
    p = {"postprocess": dict(DEFAULTS["postprocess"]), "submissions": subs,
         "leaderboard": {"table2": ["v1", "v6"], "digits": 3, "others": [],
                         "table3": {"rows": ["v6", "v7", "v2"], "reference": "v6"},
                         "table4": {"rows": ["v7", "v1"], "reference": "v7"},
                         "bootstrap": {"draws": 50, "seed": 0, "confidence": 0.95}},
         "blends": {}, "shakeup": {"rows": ["v6", "v7"], "splits": 50, "public_share": 0.3, "seed": 0}}
    p.update(extra)
    return p


def test_predict_writes_a_valid_deterministic_submission_and_manifest(tree):
    out = predict_and_submit(params(), "v6").submissions["v6"]
    assert out["rows"] == 36 and out["tta"] == [-1.0, 0.0, 1.0]
    sub = pd.read_csv(tree / "submissions/v6/submission.csv")
    sample = pd.read_csv(tree / "data/hidden/sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and list(sub.row_id) == list(sample.row_id)
    manifest = json.loads((tree / "submissions/v6/manifest.json").read_text())
    assert "models/heads/attn/fold_1.pt" in manifest["sha256"]
    assert "data/features/block_05.npy" in manifest["sha256"]
    assert manifest["postprocess"]["prior_alpha"] == 0.5 and manifest["postprocess"]["sigma"] == 1.0
    first = (tree / "submissions/v6/submission.csv").read_bytes()
    predict_and_submit(params(), "v6")
    assert (tree / "submissions/v6/submission.csv").read_bytes() == first


def test_post_processing_knobs_change_the_submission(tree):
    predict_and_submit(params(), "v2")
    predict_and_submit(params(), "v6")
    predict_and_submit(params(), "v7")
    v2, v6, v7 = (pd.read_csv(tree / f"submissions/{k}/submission.csv") for k in ("v2", "v6", "v7"))
    assert not np.allclose(v2.iloc[:, 1:], v6.iloc[:, 1:])
    assert not np.allclose(v6.iloc[:, 1:], v7.iloc[:, 1:])
    knobs = json.loads((tree / "submissions/v7/manifest.json").read_text())["postprocess"]
    assert knobs["prior_alpha"] == 1.0 and knobs["sigma"] == 1.5 and knobs["smooth_mode"] == "nearest"


def test_predict_names_a_missing_shift_and_an_unknown_knob(tree):
    write_features(tree, np.random.default_rng(1), shifts=[0.0])
    with pytest.raises(ValueError, match="no test windows at shift -1.0 s"):
        predict_and_submit(params(), "v6")
    bad = params()
    bad["submissions"]["v6"] = {**bad["submissions"]["v6"], "postprocess": {"sigmaa": 2}}
    with pytest.raises(ValueError, match=r"postprocess.PostprocessOverrides.sigmaa\n.*Extra inputs are not permitted"):
        submit.run(bad, "v6")  # the knob is the submit stage's


def test_leaderboard_scores_ranks_and_writes_table2(tree):
    for name in ("v1", "v2", "v6", "v7"):
        predict_and_submit(params(), name)
    v6_sha = json.loads((tree / "submissions/v6/manifest.json").read_text())["submission_sha256"]
    (tree / "leaderboard/kaggle.yaml").write_text(
        f"- {{submission: v6, public: 0.9, private: 0.95, date: 2026-05-28, sha256: {v6_sha}}}\n")
    result = leaderboard.run(params())
    board = json.loads((tree / "build/metrics/leaderboard/leaderboard.json").read_text())
    assert set(board["submissions"]) == {"v1", "v2", "v6", "v7"}
    v6 = board["submissions"]["v6"]
    assert v6["difference"] == pytest.approx(v6["private"] - v6["public"])
    assert sorted(s["public_rank"] for s in board["submissions"].values())[0] == 1
    assert board["kaggle"]["v6"]["difference"] == pytest.approx(0.05)
    table = (tree / "build/tables/table2.md").read_text()
    assert "| v6 | priors | attn, TTA x3, prior 0.5, sigma 1 | " in table
    assert "0.879" in table and "| 0.900 | 0.950 |" in table
    assert "| v1 | " in table and "| scalarmix, TTA x1, raw | " in table
    assert (tree / "build/figures/leaderboard.png").stat().st_size > 1000
    assert result.kaggle_dates == {"v6": "2026-05-28"} and result.mismatches == []
    assert board["kaggle"]["v6"]["matches"] is True
    table3 = (tree / "build/tables/table3.md").read_text()
    t3 = json.loads((tree / "build/metrics/leaderboard/table3.json").read_text())
    for b in ("public", "private"):
        vs = t3["compare"][b]["vs"]["v7"]
        assert vs["difference"] == pytest.approx(board["submissions"]["v7"][b] - board["submissions"]["v6"][b], abs=1e-6)
        if vs["n_files"] < 2:  # a bootstrap over files needs two: no interval, said so
            assert vs["low"] is None and vs["high"] is None
        else:
            assert vs["low"] <= vs["difference"] <= vs["high"]
    assert result.table3 == table3 and "| v7 | " in table3 and "| v6 | " in table3
    assert "Table 4" in result.table4 and "| v1 | " in result.table4


def test_a_kaggle_score_of_other_bytes_is_reported_as_such(tree):
    """kaggle.yaml binds a score to the sha256 of the file Kaggle scored: after a re-run with
    other settings the local file differs, and the leaderboard says so instead of pairing them."""
    for name in ("v1", "v2", "v6", "v7"):
        predict_and_submit(params(), name)
    (tree / "leaderboard/kaggle.yaml").write_text(
        f"- {{submission: v6, public: 0.9, private: 0.95, date: 2026-05-28, sha256: {'ab' * 32}}}\n")
    result = leaderboard.run(params())
    assert result.leaderboard["kaggle"]["v6"]["matches"] is False
    assert len(result.mismatches) == 1 and "belongs to other bytes" in result.mismatches[0]
    assert "0.900 (other bytes)" in (tree / "build/tables/table2.md").read_text()


def test_leaderboard_names_a_malformed_submission(tree):
    predict_and_submit(params(), "v1")
    path = tree / "submissions/v1/submission.csv"
    pd.read_csv(path).drop(columns="c").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"submissions/v1/submission.csv: missing column\(s\) \['c'\]"):
        leaderboard.run(params(submissions={"v1": DEFAULTS["submissions"]["v1"]}))


def test_split_solution_and_score_boards_by_hand():
    solution = pd.DataFrame({"row_id": ["A_5", "A_10", "B_5", "B_10"], "x": [1, 0, 1, 0]})
    parts = boards.split_solution(solution, pd.DataFrame({"stem": ["A", "B"], "board": ["public", "private"]}))
    assert list(parts["public"].row_id) == ["A_5", "A_10"]
    sub = pd.DataFrame({"row_id": ["A_5", "A_10", "B_5", "B_10"], "x": [0.9, 0.1, 0.2, 0.8]})
    assert boards.score_boards(sub, parts) == {"public": 1.0, "private": 0.0, "difference": -1.0}
    with pytest.raises(boards.BoardError, match=r"\['B'\] of solution.csv are on no board"):
        boards.split_solution(solution, pd.DataFrame({"stem": ["A"], "board": ["public"]}))


def test_ranks_share_ties():
    ranks = boards.add_ranks({"p": {"public": 0.8, "private": 0.7}, "q": {"public": 0.8, "private": 0.9},
                              "r": {"public": 0.6, "private": 0.8}})
    assert [ranks[n]["public_rank"] for n in "pqr"] == [1, 1, 3]
    assert [ranks[n]["private_rank"] for n in "pqr"] == [3, 1, 2]


def test_real_data_mode_reports_only_kaggle_scores(tree):
    for name in ("solution.csv", "boards.csv"):
        (tree / "data/hidden" / name).unlink()
    (tree / "leaderboard/kaggle.yaml").write_text(
        f"- {{submission: v6, public: 0.879, private: null, date: 2026-05-28, sha256: {'cd' * 32}}}\n")
    result = leaderboard.run(params())
    assert result.leaderboard["mode"] == "kaggle-only" and result.leaderboard["submissions"] == {}
    assert result.shakeup["files"] == 0 and "solution.csv is missing" in result.shakeup_sentences[0]
    assert "| v6 | priors | - | - | - | 0.879 | 0.879 | - |" in (tree / "build/tables/table2.md").read_text()
