"""Post-processing functions on hand-computed cases."""
import math

import numpy as np
import pandas as pd
import pytest

from stages.params import load_params

from birdclef_eos.scoring import postprocess as pp

CLASSES = ["a", "b"]


DEFAULTS = load_params()["postprocess"]
SHRINK = {k: DEFAULTS[f"prior_{k}"] for k in ("k_hour", "k_site", "k_site_hour")}


def chunk_table():
    return pd.DataFrame({
        "split": ["labelled", "labelled", "labelled", "labelled", "test", "unlabelled"],
        "site": ["S1", "S1", "S2", "S2", "S1", "S1"],
        "hour": [6, 6, 6, 7, 6, 6],
        "labels": ["a", "a;b", "", "b", "", ""],
    })


def test_average_shifts_in_probability_and_logit_space():
    assert pp.average_shifts([np.array([[0.2]]), np.array([[0.4]])], "prob")[0, 0] == pytest.approx(0.3)
    # logit(0.2) = -logit(0.8): their mean is 0, i.e. probability 0.5
    assert pp.average_shifts([np.array([[0.2]]), np.array([[0.8]])], "logit")[0, 0] == pytest.approx(0.5)
    with pytest.raises(pp.PostprocessError, match="shape"):
        pp.average_shifts([np.zeros((2, 1)), np.zeros((3, 1))], "prob")


def test_prior_levels_follow_the_shrinkage_formula():
    prior = pp.fit_prior(chunk_table(), CLASSES)
    assert prior["global"] == pytest.approx([0.5, 0.5])          # 2 of 4 labelled chunks each
    assert prior["hour"]["6"][0] == 3 and prior["site"]["S1"][0] == 2
    # hour 6: w = 3/11 towards (2/3, 1/3) -> (6/11, 5/11); site S1: w = 2/10 towards (1, 1/2) -> (7/11, 5.1/11)
    p = pp.prior_probability(prior, "S1", 6, k_hour=8, k_site=8, k_site_hour=0)
    assert p == pytest.approx([7 / 11, 5.1 / 11])
    # site x hour S1|6: w = 2/6 towards (1, 1/2) -> (25/33, 15.7/33)
    p = pp.prior_probability(prior, "S1", 6, k_hour=8, k_site=8, k_site_hour=4)
    assert p == pytest.approx([25 / 33, 15.7 / 33])
    # an unseen site only gets the hour level
    assert pp.prior_probability(prior, "S9", 6, **SHRINK) == pytest.approx([6 / 11, 5 / 11])
    # hours read back as text or float mean the same hour
    assert pp.prior_probability(prior, "S9", "6.0", **SHRINK) == pytest.approx([6 / 11, 5 / 11])


def test_prior_ignores_test_and_unlabelled_chunks():
    table = chunk_table()
    leaked = table.copy()
    leaked.loc[leaked["split"] != "labelled", "labels"] = "a"
    a, b = pp.fit_prior(table, CLASSES), pp.fit_prior(leaked, CLASSES)
    assert a["global"] == pytest.approx(b["global"])
    with pytest.raises(pp.PostprocessError, match="no labelled"):
        pp.fit_prior(table[table["split"] == "test"], CLASSES)


def test_apply_prior_adds_alpha_times_the_prior_log_odds():
    prior = pp.fit_prior(chunk_table(), CLASSES)
    z = pp.apply_prior(np.zeros((1, 2)), ["S9"], [6], prior, alpha=0.5, clip=1e-4, relative=False, **SHRINK)
    assert z[0] == pytest.approx([0.5 * math.log(6 / 5), 0.5 * math.log(5 / 6)])
    assert pp.apply_prior(np.ones((1, 2)), ["S9"], [6], prior, alpha=0.0, clip=1e-4, relative=False, **SHRINK)[0] == pytest.approx([1, 1])


def test_apply_prior_relative_subtracts_the_global_log_odds():
    prior = pp.fit_prior(chunk_table(), CLASSES)
    prior["global"] = np.array([0.25, 0.5])
    z = pp.apply_prior(np.zeros((1, 2)), ["S9"], [99], prior, alpha=1.0, clip=1e-4, relative=True, **SHRINK)
    assert z[0] == pytest.approx([0.0, 0.0])  # no level applies: the prior is the global one


def test_multi_hot_names_an_unknown_label():
    with pytest.raises(pp.PostprocessError, match="'zz' in row 1"):
        pp.multi_hot(pd.Series(["a", "zz"]), CLASSES)


def test_gaussian_smoothing_stays_inside_each_file():
    # rows out of chunk order, two files interleaved; file A has an impulse in chunk 1
    files = ["A", "B", "A", "B", "A", "B"]
    chunks = [1, 0, 0, 1, 2, 2]
    P = np.array([[1.0], [0.0], [0.0], [0.0], [0.0], [0.0]])
    out = pp.gaussian_smooth(P, files, chunks, sigma=1.0, mode="constant", space="prob", truncate=1.0)
    side, centre = math.exp(-0.5), 1.0
    total = centre + 2 * side
    assert out[[2, 0, 4], 0] == pytest.approx([side / total, centre / total, side / total])
    assert out[[1, 3, 5], 0] == pytest.approx([0, 0, 0])


def test_gaussian_smoothing_keeps_constants_and_sigma_zero_is_identity():
    P = np.full((4, 2), 0.3)
    assert pp.gaussian_smooth(P, ["A"] * 4, range(4), 1.5, mode="nearest", space="logit", truncate=4.0) == pytest.approx(P)
    Q = np.array([[0.1], [0.9]])
    assert pp.gaussian_smooth(Q, ["A", "A"], [0, 1], 0.0, mode="nearest", space="logit", truncate=4.0) == pytest.approx(Q)
    with pytest.raises(pp.PostprocessError, match="space"):
        pp.gaussian_smooth(Q, ["A", "A"], [0, 1], 1.0, mode="nearest", space="rank", truncate=4.0)


def test_rank_power_scale_multiplies_by_the_file_max():
    P = np.array([[0.5], [0.25], [0.8]])
    out = pp.rank_power_scale(P, ["A", "A", "B"], [0, 1, 0], power=1.0)
    assert out[:, 0] == pytest.approx([0.25, 0.125, 0.64])


def test_adaptive_neighbour_smoothing_by_hand():
    P = np.array([[0.2], [0.6], [0.4]])
    out = pp.adaptive_neighbour_smooth(P, ["A"] * 3, [0, 1, 2], base=0.5)
    # a = 0.5 (1 - conf): chunk 0 a=0.4 towards 0.6; chunk 1 a=0.2 towards 0.3; chunk 2 a=0.3 towards 0.6
    assert out[:, 0] == pytest.approx([0.36, 0.54, 0.46])


def test_taxonomy_smoothing_genus_then_class():
    P = np.array([[0.2, 0.6, 0.9]])
    out = pp.taxonomy_smooth(P, ["G", "G", "H"], ["Aves"] * 3, genus_alpha=0.5, class_alpha=0.1)
    # genus G: mean 0.4 -> (0.3, 0.5); H alone stays 0.9; class: 0.9 p + 0.1 * 1.7/3
    m = 1.7 / 3
    assert out[0] == pytest.approx([0.27 + 0.1 * m, 0.45 + 0.1 * m, 0.81 + 0.1 * m])


def test_chain_with_every_step_off_is_identity_and_needs_a_prior():
    rows = pd.DataFrame({"file_id": ["A", "A"], "chunk": [0, 1], "site": ["S1", "S1"], "hour": [6, 6]})
    P = np.array([[0.1, 0.7], [0.4, 0.2]])
    off = pp.resolve_knobs(DEFAULTS, False, "raw")
    assert pp.postprocess(P, rows, off) == pytest.approx(P)
    with_prior = pp.resolve_knobs(DEFAULTS, {"prior_alpha": 0.5, "sigma": 0.0}, "prior")
    with pytest.raises(pp.PostprocessError, match="no prior"):
        pp.postprocess(P, rows, with_prior)
    prior = pp.fit_prior(chunk_table(), CLASSES)
    moved = pp.postprocess(P, rows, with_prior, prior=prior)
    assert moved[:, 0] == pytest.approx(pp.sigmoid(pp.logit(P[:, 0]) + 0.5 * pp.logit(
        pp.prior_probability(prior, "S1", 6, **SHRINK))[0]))


def test_knobs_resolve_from_the_shared_defaults_only():
    """false switches every step off, true takes params.yaml's defaults, a mapping overrides some;
    a knob that is not in params.yaml is an error naming the submission."""
    assert pp.resolve_knobs(DEFAULTS, True, "v6") == pp.Knobs(**DEFAULTS)
    off = pp.resolve_knobs(DEFAULTS, False, "v2")
    assert all(getattr(off, k) == 0 for k in pp.STEP_KNOBS) and off.smooth_mode == DEFAULTS["smooth_mode"]
    assert pp.resolve_knobs(DEFAULTS, {"sigma": 1.5}, "v7").sigma == 1.5
    with pytest.raises(pp.PostprocessError, match="submissions.v9.postprocess"):
        pp.resolve_knobs(DEFAULTS, {"sigmaa": 1}, "v9")
    with pytest.raises(pp.PostprocessError, match="true, false or a mapping"):
        pp.resolve_knobs(DEFAULTS, "yes", "v9")


def test_file_groups_are_each_files_rows_by_chunk_in_order_of_first_appearance():
    from birdclef_eos.scoring.postprocess import file_groups

    files = np.array(["b", "a", "b", "c", "a", "b"])
    chunks = np.array([2, 1, 0, 0, 0, 1])
    got = file_groups(files, chunks)
    assert [g.tolist() for g in got] == [[2, 5, 0], [4, 1], [3]]
    assert file_groups(np.array([], dtype=str), np.array([], dtype=int)) == []
