"""The ablation: the paired bootstrap over files, the soundscape probe ranking and the
sentences the ablation table ends with."""
from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest

from birdclef_eos.probe import soundscape
from birdclef_eos.report.ablation import ablation_markdown, sentences, verdict
from birdclef_eos.scoring.bootstrap import file_draws, paired_bootstrap, paired_bootstraps
from birdclef_eos.scoring.pairs import pair_counts, weighted_scores
from birdclef_eos.scoring.metric import macro_auc
from tests.fakes import toy_features


def toy_predictions(n_files=40, chunks=12, n_classes=6, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n_files * chunks, n_classes)) < 0.1).astype(float)
    groups = np.repeat([f"file_{i:03d}" for i in range(n_files)], chunks)
    good = y * 1.0 + rng.normal(scale=0.5, size=y.shape)
    poor = y * 0.2 + rng.normal(scale=0.5, size=y.shape)
    return y, groups, good, poor


def test_weighted_auc_is_the_metric_on_the_resampled_rows():
    y, groups, good, _ = toy_predictions(n_files=15, n_classes=8)
    good = np.round(good, 1)  # ties
    inverse, counts = file_draws(groups, 5, seed=3)
    pc = pair_counts(y, good, inverse, counts.shape[1])
    assert weighted_scores(pc, np.ones((1, counts.shape[1])))[0] == pytest.approx(macro_auc(y, good), abs=1e-12)
    for c, got in zip(counts, weighted_scores(pc, counts)):
        rows = np.concatenate([np.flatnonzero(inverse == f) for f in np.repeat(np.arange(len(c)), c)])
        assert got == pytest.approx(macro_auc(y[rows], good[rows]), abs=1e-12)


def test_identical_predictions_give_a_zero_interval():
    y, groups, good, _ = toy_predictions()
    ci = paired_bootstrap(y, good, good.copy(), groups, n_boot=200, seed=0)
    assert (ci.difference, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert ci.draws == 200 and ci.n_files == 40


def test_a_clearly_better_model_has_an_interval_above_zero():
    y, groups, good, poor = toy_predictions()
    ci = paired_bootstrap(y, good, poor, groups, n_boot=300, seed=1)
    assert ci.difference > 0 and 0 < ci.low <= ci.difference <= ci.high
    flipped = paired_bootstrap(y, poor, good, groups, n_boot=300, seed=1)
    assert flipped.high < 0 and flipped.low == pytest.approx(-ci.high)
    # seeded: the same draws again; several models share the reference's draws
    assert paired_bootstrap(y, good, poor, groups, n_boot=300, seed=1) == ci
    both = paired_bootstraps(y, good, {"poor": poor, "same": good}, groups, n_boot=300, seed=1)
    assert both["poor"] == ci and both["same"].high == 0.0


def test_draws_without_a_positive_class_drop_that_class():
    """A rare class lives in one file: draws that miss it score the other classes only."""
    y, groups, good, poor = toy_predictions(n_files=20, n_classes=3)
    y[:, 2] = 0
    y[:2, 2] = 1  # the rare class: two chunks of file_000
    ci = paired_bootstrap(y, good, poor, groups, n_boot=200, seed=0)
    assert ci.draws == 200 and np.isfinite([ci.low, ci.high]).all()


def test_the_soundscape_probe_ranks_the_informative_block_first():
    windows, arrays, meta, species = toy_features.toy_store(n_species=5, n_soundscapes=24, channels=(6, 6, 6, 6),
                                                            noise=1.0, informative=2)
    rows = windows[(windows["split"] == "labelled") & (windows["shift_s"] == 0)]
    labels = species["primary_label"].tolist()
    y = np.array([[label in cell.split(";") for label in labels] for cell in rows["labels"]], dtype=float)
    idx = rows.index.to_numpy()
    blocks = {n: arrays[n][idx] for n in features_names(meta)}
    for method in ("ridge", "logistic"):
        scored = soundscape.score_blocks(blocks, y, rows["file_id"].to_numpy(), n_folds=3, seed=0, method=method)
        assert scored["blocks"]["block_02"]["rank"] == 1, (method, scored)
        assert scored["blocks"]["block_02"]["macro_auc"] > 0.8
        assert max(v["macro_auc"] for n, v in scored["blocks"].items() if n != "block_02") < 0.7
    # folds are grouped by file: no file on both sides
    folds = soundscape.file_folds(rows["file_id"].to_numpy(), 3, 0)
    assert pd.DataFrame({"f": rows["file_id"].to_numpy(), "k": folds}).groupby("f")["k"].nunique().max() == 1
    agree = soundscape.rank_agreement({"a": 0.1, "b": 0.5, "c": 0.9}, {"a": 0.6, "b": 0.7, "c": 0.8})
    assert agree["rho"] == pytest.approx(1.0) and agree["n_blocks"] == 3


def features_names(meta):
    return [f"block_{b:02d}" for b in meta["blocks"]]


def interval(diff, low, high):
    return {"score_a": 0.8, "score_b": 0.8 - diff, "difference": diff, "low": low, "high": high,
            "draws": 1000, "n_boot": 1000, "n_files": 50, "confidence": 0.95}


def toy_result(rho=0.9):
    comparisons = {
        "abl_embedding": {"oof": interval(0.05, 0.02, 0.08), "public": interval(0.01, -0.02, 0.04),
                          "private": interval(0.03, 0.01, 0.05)},
        "abl_last3": {"oof": interval(-0.01, -0.03, 0.01), "public": interval(0.0, -0.02, 0.02),
                      "private": interval(-0.01, -0.04, 0.02)},
        "abl_all": {"oof": interval(-0.04, -0.06, -0.02), "public": interval(-0.03, -0.05, -0.01),
                    "private": interval(-0.01, -0.03, 0.01)},
    }
    choices = {"abl_embedding": ("embedding", ["embedding"], "attn"), "abl_last3": ("last3", [13, 14, 15], "attn"),
               "abl_all": ("all", list(range(16)), "scalarmix")}
    variants = {n: {"choice": choices[n][0], "blocks": choices[n][1], "head": choices[n][2], "oof": 0.75,
                    "public": 0.7, "private": 0.7, "comparison": c} for n, c in comparisons.items()}
    blocks = {f"block_{i:02d}": {"macro_auc": 0.5 + i / 40, "rank": 16 - i, "focal_accuracy": 0.2 + i / 30,
                                 "focal_rank": 16 - i} for i in range(16)}
    return {"reference": {"name": "attn", "blocks": [9, 14, 15], "head": "attn", "oof": 0.8, "public": 0.75,
                          "private": 0.74, "probe_selected": [9, 14, 15], "is_probe_choice": True},
            "variants": variants, "boards_scored": ["private", "public"],
            "bootstrap": {"draws": 1000, "confidence": 0.95, "seed": 0},
            "soundscape_probe": {"method": "ridge", "folds": 5, "n_chunks": 1800, "n_files": 150, "blocks": blocks,
                                 "agreement": {"rho": rho, "p_value": 0.0, "n_blocks": 16},
                                 "focal_top": [13, 14, 15], "soundscape_top": [15, 14, 12]}}


def test_the_ablation_sentences_follow_the_numbers():
    result = toy_result()
    said = sentences(result)
    assert said[0].startswith("The probe's choice beats the final embedding (`abl_embedding`) here: better on OOF "
                              "(+0.050 [+0.020, +0.080]); within noise on the public board")
    assert said[1].startswith("The probe's choice and the last three blocks (`abl_last3`) are within noise of each "
                              "other here")
    assert said[2].startswith("The probe's choice loses to all blocks through the scalar mix (`abl_all`) here: worse on OOF")
    assert said[3] == ("The focal and soundscape probe rankings agree (Spearman rho = 0.90 over 16 blocks); the focal "
                       "top 3 are blocks 13, 14, 15, the soundscape top 3 blocks 15, 14, 12 (2 in common).")
    assert "do not agree" in sentences(toy_result(rho=0.1))[-1]
    assert "agree only partly" in sentences(toy_result(rho=0.5))[-1]
    table = ablation_markdown(result, said)
    assert "| attn (probe's choice) | 9, 14, 15 | attn | 0.800 | — | 0.750 | — | 0.740 | — |" in table
    assert "| abl_embedding (embedding) | embedding | attn | 0.750 | +0.050 [+0.020, +0.080] |" in table
    assert table.rstrip().endswith(said[-1])
    assert verdict(interval(0.0, 0.0, 0.0)) == "within noise"


def test_a_reference_that_is_not_the_probe_choice_is_said():
    result = toy_result()
    result["reference"].update(blocks=[1, 2, 3], is_probe_choice=False)
    assert sentences(result)[0].startswith("Note: `attn` does not read the probe's selection (9, 14, 15)")


def test_a_board_of_one_file_has_no_interval():
    y, groups, good, poor = toy_predictions(n_files=1)
    ci = paired_bootstrap(y, good, poor, groups, n_boot=50, seed=0)
    assert ci.draws == 0 and ci.as_dict()["low"] is None and ci.difference > 0
    result = toy_result()
    result["variants"]["abl_last3"]["comparison"]["public"] = ci.as_dict()
    said = sentences(result)
    assert "not resampled on the public board" in said[1] and "[one file: no interval]" in said[1]
    result["variants"]["abl_last3"]["comparison"]["private"]["n_files"] = 2
    assert "on the private board (-0.010 [-0.040, +0.020]; only 2 files)" in sentences(result)[1]


def test_undefined_soundscape_scores_are_null_with_the_reason_and_read_undefined():
    """A small board: no labelled chunk has a label, so no block's macro-AUC is defined, and the
    rank correlation is not either; the json holds nulls with reasons (no NaN, which JSON refuses)
    and the table and the sentence say "undefined"."""
    rng = np.random.default_rng(0)
    blocks = {f"block_{i:02d}": rng.normal(size=(12, 4)) for i in range(4)}
    y = np.zeros((12, 3))
    groups = np.repeat([f"f{i}" for i in range(4)], 3)
    scored = soundscape.score_blocks(blocks, y, groups, n_folds=2, seed=0)
    for entry in scored["blocks"].values():
        assert entry["macro_auc"] is None and "both positives and negatives" in entry["undefined"]
    agree = soundscape.rank_agreement({n: 0.5 for n in blocks}, {n: v["macro_auc"] for n, v in scored["blocks"].items()})
    assert agree["rho"] is None and agree["p_value"] is None and "needs 3" in agree["undefined"]
    constant = soundscape.rank_agreement({"a": 0.1, "b": 0.5, "c": 0.9}, {"a": 0.6, "b": 0.6, "c": 0.6})
    assert constant["rho"] is None and "same score" in constant["undefined"]

    result = toy_result()
    sp = result["soundscape_probe"]
    sp["blocks"] = {n: {**v, "rank": i + 1} for i, (n, v) in enumerate(scored["blocks"].items())}
    sp["agreement"] = agree
    json.dumps(result, allow_nan=False)  # what write_json does: no NaN anywhere
    said = sentences(result)
    assert said[-1].startswith("The focal and soundscape rankings cannot be compared here: their rank correlation "
                               "is undefined (0 block(s) scored by both probes")
    table = ablation_markdown(result, said)
    assert "| undefined | 1 |" in table


def test_an_undefined_board_reads_undefined_in_the_table_and_the_sentences():
    result = toy_result()
    reason = "undefined on the public board: no label column has both positives and negatives (8 rows of 2 file(s))"
    result["reference"]["public"] = None
    for v in result["variants"].values():
        v["public"] = None
        v["comparison"]["public"] = {"difference": None, "low": None, "high": None, "undefined": reason}
    said = sentences(result)
    table = ablation_markdown(result, said)
    assert "| attn (probe's choice) | 9, 14, 15 | attn | 0.800 | — | undefined | — | 0.740 | — |" in table
    assert "| 0.750 | +0.050 [+0.020, +0.080] | undefined | undefined | 0.700 |" in table
    assert "; undefined on the public board: no label column has both positives and negatives" in said[0]
    assert "better on the private board" in said[0]
