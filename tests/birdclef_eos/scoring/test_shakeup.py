"""The shake-up's pair counts give exactly the competition metric on any set of files."""
import numpy as np
import pytest

from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.pairs import pair_counts
from birdclef_eos.scoring.shakeup import random_splits, split_scores, swap_probability


def toy(seed=0, files=8, rows=6, k=4):
    rng = np.random.default_rng(seed)
    y = (rng.random((files * rows, k)) < 0.25).astype(float)
    y[0, :] = 1  # every class has a positive and a negative somewhere
    y[1, :] = 0
    s = np.round(rng.random(y.shape), 1)  # coarse: ties happen
    return y, s, np.repeat(np.arange(files), rows)


def test_split_scores_equal_the_metric_on_each_board():
    y, s, f = toy()
    splits = random_splits(8, 0.3, 20, seed=1)
    pub, priv = split_scores(pair_counts(y, s, f, 8), splits)
    for b in range(len(splits)):
        on = splits[b][f]
        for mask, got in ((on, pub[b]), (~on, priv[b])):
            keep = (y[mask].sum(0) > 0) & ((1 - y[mask]).sum(0) > 0)
            assert got == pytest.approx(macro_auc(y[mask][:, keep], s[mask][:, keep]))


def test_splits_put_three_tenths_of_the_files_on_public():
    splits = random_splits(150, 0.3, 50, seed=0)
    assert (splits.sum(axis=1) == 45).all() and not (splits[0] == splits[1]).all()
    assert (random_splits(150, 0.3, 50, seed=0) == splits).all()


def test_two_submissions_that_differ_on_one_file():
    """b is a better ordering than a on file 3 only: b never loses, it differs exactly on the board
    that holds file 3, and the two never swap order."""
    y, a, f = toy(seed=2)
    b = a.copy()
    rows = f == 3
    b[rows] = np.where(y[rows] > 0.5, 0.99, 0.01)
    splits = random_splits(8, 0.3, 200, seed=3)
    pa, qa = split_scores(pair_counts(y, a, f, 8), splits)
    pb, qb = split_scores(pair_counts(y, b, f, 8), splits)
    on_public = splits[:, 3]
    assert np.all(pb >= pa - 1e-12) and np.all(qb >= qa - 1e-12)
    assert np.allclose(pa[~on_public], pb[~on_public]) and np.allclose(qa[on_public], qb[on_public])
    assert (pb[on_public] > pa[on_public]).any() and (qb[~on_public] > qa[~on_public]).any()
    assert swap_probability(pa, qa, pb, qb) == 0.0
    assert swap_probability(pa, qa, pa, qa) == 0.0


def test_summarise_leaves_out_unscorable_splits_and_says_so_when_none_is_scored():
    from birdclef_eos.scoring.shakeup import summarise, swap_probability
    out = summarise(0.01, np.array([0.02, np.nan, -0.01, 0.03]))
    assert out["undefined_splits"] == 1 and out["p_gain"] == round(2 / 3, 4)
    assert out["mean"] == round(0.04 / 3, 6)
    assert "undefined_splits" not in summarise(0.01, np.array([0.02, -0.01]))
    empty = summarise(float("nan"), np.array([np.nan, np.nan]))
    assert empty["observed"] is None and empty["mean"] is None and empty["p_gain"] is None
    assert "no split" in empty["undefined"]
    # split 0 swaps (a above b on public, below on private), split 1 has no public score, split 2 keeps order
    pub_a, priv_a = np.array([0.9, np.nan, 0.9]), np.array([0.7, 0.7, 0.9])
    pub_b, priv_b = np.array([0.8, 0.8, 0.8]), np.array([0.8, 0.8, 0.8])
    assert swap_probability(pub_a, priv_a, pub_b, priv_b) == 0.5
    assert swap_probability(np.array([np.nan]), np.array([0.5]), np.array([0.4]), np.array([0.6])) is None


def test_the_shakeup_sentences_say_undefined_where_a_split_has_no_score():
    from birdclef_eos.report.ceiling import shakeup_sentences
    from birdclef_eos.scoring.shakeup import summarise
    result = {"splits": 4, "public_share": 0.3, "blends": ["b"], "swaps": [{"a": "a", "b": "b", "p_swap": None}],
              "submissions": {"a": summarise(float("nan"), np.array([0.02, np.nan, -0.01, 0.03])),
                              "b": summarise(float("nan"), np.array([np.nan, np.nan]))}}
    said = shakeup_sentences(result)
    assert said[0].startswith("a (standalone): private - public undefined on our split; over 4 random")
    assert said[1].startswith("b (blend): private - public undefined (no split has")
    assert len(said) == 2  # no swap sentence without a scored swap
