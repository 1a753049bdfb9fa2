"""The v7 sweep on a hand-made OOF: each grid cell is the post-processed OOF's score, the pick its argmax."""
import numpy as np
import pandas as pd
import pytest

from birdclef_eos.report.sweep import sweep_markdown, sweep_sentence, verdict
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.postprocess import Knobs, fit_prior, postprocess
from birdclef_eos.scoring.sweep import sweep

CLASSES = ["a", "b"]


def knobs(**kw):
    base = dict(prior_alpha=0.0, prior_k_hour=8.0, prior_k_site=8.0, prior_k_site_hour=4.0, prior_clip=1e-4,
                prior_relative=False, sigma=0.0, smooth_mode="nearest", smooth_space="logit", smooth_truncate=4.0,
                tta_space="prob", rank_power=0.0, neighbour_base=0.0, tax_genus_alpha=0.0, tax_class_alpha=0.0)
    return Knobs(**{**base, **kw})


def case():
    rng = np.random.default_rng(0)
    files = np.repeat(["f1", "f2", "f3", "f4"], 6)
    rows = pd.DataFrame({"file_id": files, "chunk": np.tile(np.arange(6), 4), "site": np.repeat(["S1", "S1", "S2", "S2"], 6),
                         "hour": 6})
    y = np.zeros((24, 2))
    y[:12, 0] = 1  # species a lives at site S1, b at S2
    y[12:, 1] = 1
    y[rng.random(24) < 0.2] = 0
    y[0] = [1, 0]
    y[12] = [0, 1]
    chunks = rows.assign(split="labelled", labels=[";".join(c for c, v in zip(CLASSES, r) if v) for r in y])
    P = np.clip(y * 0.3 + rng.random((24, 2)) * 0.7, 0.01, 0.99)
    return P, y, rows, fit_prior(chunks, CLASSES)


def test_each_cell_is_the_post_processed_oof_and_the_pick_its_best():
    P, y, rows, prior = case()
    grid = sweep(P, y, rows, knobs(), [0.0, 0.5, 2.0], [0.0, 1.0], prior)
    for i, a in enumerate(grid.alphas):
        for j, s in enumerate(grid.sigmas):
            assert grid.scores[i, j] == pytest.approx(macro_auc(y, postprocess(P, rows, knobs(prior_alpha=a, sigma=s), prior=prior)))
    i, j = np.unravel_index(np.argmax(grid.scores), grid.scores.shape)
    assert grid.pick == (grid.alphas[i], grid.sigmas[j])
    assert grid.scores[0, 0] == pytest.approx(macro_auc(y, P))  # alpha 0, sigma 0: the raw OOF
    # a prior fitted on the very labels it is scored on can only help here: the in-sample inflation
    assert grid.scores[2, 0] > grid.scores[0, 0]


def test_the_sentence_says_whether_the_pick_loses():
    result = {"pick": {"prior_alpha": 2.0, "sigma": 0.5, "oof": 0.98}, "v6": {"prior_alpha": 0.5, "sigma": 1.0, "oof": 0.97},
              "v7": {"prior_alpha": 1.0, "sigma": 1.5, "oof": 0.975}, "model": "attn", "raw_oof": 0.8,
              "grid": {"prior_alpha": [0.5, 2.0], "sigma": [0.5, 1.0], "oof": [[0.96, 0.97], [0.98, 0.975]]},
              "boards": {"public": {"v6": 0.92, "pick": 0.82, "pick_minus_v6": {"difference": -0.1, "low": -0.12, "high": -0.07}},
                         "private": {"v6": 0.92, "pick": 0.93, "pick_minus_v6": {"difference": 0.01, "low": -0.01, "high": 0.03}}}}
    text = sweep_sentence(result)
    assert "public loses to v6" in text and "private cannot be told apart from v6" in text
    result["sentence"] = text
    assert "**0.9800**" in sweep_markdown(result)
    assert verdict({"difference": 0.02, "low": 0.01, "high": 0.03}) == "beats v6"


def test_the_leak_free_sweep_fits_each_folds_prior_without_its_files():
    from birdclef_eos.scoring.sweep import sweep_foldwise
    P, y, rows, _ = case()
    chunks = rows.assign(split="labelled", soundscape_id=rows["file_id"],
                         labels=[";".join(c for c, v in zip(CLASSES, r) if v) for r in y])
    fold_of = rows["file_id"].map({"f1": 0, "f2": 1, "f3": 0, "f4": 1}).to_numpy()
    fold_priors = [(fold_of == k, fit_prior(chunks[fold_of != k], CLASSES)) for k in (0, 1)]
    grid = sweep_foldwise(P, y, rows, knobs(), [0.0, 2.0], [0.0, 1.0], fold_priors)
    by_hand = np.zeros_like(P)
    for mask, prior in fold_priors:
        by_hand[mask] = postprocess(P[mask], rows[mask].reset_index(drop=True), knobs(prior_alpha=2.0), prior=prior)
    assert grid.scores[1, 0] == pytest.approx(macro_auc(y, by_hand))
    assert grid.scores[0, 0] == pytest.approx(macro_auc(y, P))  # alpha 0: no prior, nothing to leak
    in_sample = sweep(P, y, rows, knobs(), [0.0, 2.0], [0.0, 1.0], fit_prior(chunks, CLASSES))
    assert in_sample.scores[1, 0] > grid.scores[1, 0]  # the in-sample prior sees the scored labels
    with pytest.raises(ValueError, match="cover every OOF row exactly once"):
        sweep_foldwise(P, y, rows, knobs(), [0.0], [0.0], fold_priors[:1])


def test_the_sentence_puts_the_leak_free_test_first_and_the_paper_from_reported():
    boards = {"public": {"v6": 0.92, "pick": 0.91, "pick_minus_v6": {"difference": -0.01, "low": -0.03, "high": 0.01}},
              "private": {"v6": 0.92, "pick": 0.93, "pick_minus_v6": {"difference": 0.01, "low": -0.01, "high": 0.03}}}
    result = {"pick": {"prior_alpha": 2.0, "sigma": 0.5, "oof": 0.98}, "v6": {"prior_alpha": 0.5, "sigma": 1.0, "oof": 0.97},
              "v7": {"prior_alpha": 1.0, "sigma": 1.5, "oof": 0.975}, "boards": boards,
              "leak_free": {"pick": {"prior_alpha": 0.25, "sigma": 1.0, "oof": 0.88}, "v6_oof": 0.877, "boards": boards},
              "paper": {"v6_public": 0.879, "v7_public": 0.861}}
    text = sweep_sentence(result)
    assert text.startswith("The leak-free OOF sweep (each fold's prior fitted without its files; the v7 test) picks "
                           "prior alpha 0.25 and sigma 1 (OOF 0.880, against 0.877")
    assert "The in-sample OOF sweep (the prior fitted on the chunks it scores; an illustration)" in text
    assert text.endswith("The paper's v7 scored -0.018 public against v6.")
