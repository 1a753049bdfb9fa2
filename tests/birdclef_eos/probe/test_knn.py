"""The per-block kNN probe: ranking, chance level, intervals, determinism, grouped folds."""
import numpy as np
import pytest

from birdclef_eos.probe import knn

CFG = {"k": 5, "folds": 5, "distance": "cosine", "normalisation": "standardize",
       "bootstrap": 200, "seed": 0, "linear_probe": True, "linear_c": 1.0, "linear_max_iter": 200}


def toy_clips(n_species=6, clips=12, recordings_per_species=4, seed=0):
    """Labels and recording groups: each species' clips spread over a few recordings."""
    labels = np.repeat(np.arange(n_species), clips)
    per_rec = np.tile(np.arange(clips) % recordings_per_species, n_species)
    groups = labels * 100 + per_rec
    return labels, groups


def toy_blocks(labels, seed=0):
    rng = np.random.default_rng(seed)
    n, k = len(labels), labels.max() + 1
    centroids = rng.normal(size=(k, 16)) * 3.0
    return {
        "block_00": rng.normal(size=(n, 16)),                                   # pure noise
        "block_01": centroids[labels] * 0.3 + rng.normal(size=(n, 16)),        # weak signal
        "block_02": centroids[labels] + 0.5 * rng.normal(size=(n, 16)),        # separates classes
    }


def test_separating_block_ranks_first_and_noise_is_near_chance():
    labels, groups = toy_clips()
    result = knn.score_blocks(toy_blocks(labels), labels, groups, CFG)
    scores = result["blocks"]
    assert scores["block_02"]["rank"] == 1
    assert scores["block_02"]["accuracy"] > 0.9
    assert scores["block_02"]["linear_accuracy"] > 0.9
    assert result["chance"] == pytest.approx(1 / 6)
    assert abs(scores["block_00"]["accuracy"] - result["chance"]) < 0.15
    assert knn.top_blocks(scores, 2) == [1, 2]


def test_intervals_contain_the_point_estimate():
    labels, groups = toy_clips()
    scores = knn.score_blocks(toy_blocks(labels), labels, groups, CFG)["blocks"]
    for s in scores.values():
        assert s["ci_low"] <= s["accuracy"] <= s["ci_high"]
        assert s["ci_low"] < s["ci_high"] or s["accuracy"] in (0.0, 1.0)


def test_same_seed_same_numbers_other_seed_other_folds():
    labels, groups = toy_clips()
    blocks = toy_blocks(labels)
    a = knn.score_blocks(blocks, labels, groups, CFG)
    b = knn.score_blocks(blocks, labels, groups, CFG)
    assert a["blocks"] == b["blocks"]
    assert np.array_equal(a["folds"], b["folds"])
    c = knn.score_blocks(blocks, labels, groups, {**CFG, "seed": 1})
    assert not np.array_equal(a["folds"], c["folds"])


def test_group_folds_never_split_a_recording():
    labels, groups = toy_clips(recordings_per_species=3)
    folds = knn.grouped_folds(labels, groups, 5, seed=3)
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    assert set(folds) == set(range(5))


def test_leaky_duplicates_are_not_found_across_folds():
    # Every window of a recording is the same vector: ungrouped folds would score 1.0 on noise.
    labels, groups = toy_clips(recordings_per_species=4)
    rng = np.random.default_rng(1)
    per_group = {g: rng.normal(size=8) for g in np.unique(groups)}
    x = np.stack([per_group[g] for g in groups])
    folds = knn.grouped_folds(labels, groups, 4, seed=0)
    acc = knn.knn_correct(x, labels, folds, 5, "euclidean", "none").mean()
    assert acc < 0.5


def test_bad_choices_and_bad_features_are_errors():
    labels, groups = toy_clips()
    blocks = toy_blocks(labels)
    with pytest.raises(knn.ProbeError, match="distance"):
        knn.score_blocks(blocks, labels, groups, {**CFG, "distance": "manhattan"})
    with pytest.raises(knn.ProbeError, match="normalisation"):
        knn.score_blocks(blocks, labels, groups, {**CFG, "normalisation": "pca"})
    blocks["block_01"][3, 2] = np.nan
    with pytest.raises(knn.ProbeError, match="block_01"):
        knn.score_blocks(blocks, labels, groups, CFG)


def test_normalisations_fit_on_training_fold_only():
    train = np.array([[1.0, 10.0], [3.0, 10.0]])
    test = np.array([[5.0, 10.0]])
    tr, te = knn.normalise_features(train, test, "standardize")
    assert np.allclose(tr[:, 0], [-1, 1]) and np.allclose(te[:, 0], [3])
    assert np.allclose(te[:, 1], 0)  # a constant column does not divide by zero
    _, te = knn.normalise_features(train, test, "l2")
    assert np.allclose(np.linalg.norm(te, axis=1), 1)


def test_paired_difference_resamples_both_blocks_together():
    groups = np.repeat(np.arange(10), 4)
    a = np.ones(40, dtype=bool)
    b = a.copy()
    b[::4] = False                                   # b misses one clip of every recording
    d = knn.paired_difference(a, b, groups, n_boot=200, seed=0)
    assert d["difference"] == 0.25
    assert d["low"] == d["high"] == 0.25             # the same miss in every recording: no spread when paired
    with pytest.raises(knn.ProbeError):
        knn.paired_difference(a, b[:-1], groups, 10, 0)


def test_score_blocks_returns_each_clip_outcome():
    labels, groups = toy_clips()
    out = knn.score_blocks(toy_blocks(labels), labels, groups, CFG)
    for name, s in out["blocks"].items():
        assert "correct" not in s
        assert np.isclose(out["correct"][name].mean(), s["accuracy"])
