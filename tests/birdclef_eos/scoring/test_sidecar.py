import numpy as np
import pandas as pd
import pytest

from birdclef_eos.scoring.blend import rank_columns as column_ranks
from birdclef_eos.scoring.sidecar import SidecarError, apply, correct, top_k_mask

# 4 chunks x 3 classes. Anchor ranks per class (column): class 0 ranks rows 0..3 as 0, 1/3, 2/3, 1.
ANCHOR = np.array([[0.1, 0.9, 0.5],
                   [0.2, 0.8, 0.6],
                   [0.3, 0.7, 0.7],
                   [0.4, 0.6, 0.8]])
# The sidecar reverses classes 0 and 1 and agrees on class 2.
SIDECAR = np.array([[0.9, 0.05, 0.5],
                    [0.8, 0.10, 0.6],
                    [0.7, 0.20, 0.7],
                    [0.6, 0.30, 0.8]])


def test_column_ranks_hand_case():
    np.testing.assert_allclose(column_ranks(ANCHOR)[:, 0], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(column_ranks(ANCHOR)[:, 1], [1, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(column_ranks(np.array([[1.0, 2.0], [1.0, 3.0]])), [[0.5, 0], [0.5, 1]])


def test_top_k_mask():
    # row 2 ties classes 0 and 2 (0.7): the lower index wins; row 3's best is class 2
    np.testing.assert_array_equal(top_k_mask(SIDECAR, 1), [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]])
    assert top_k_mask(SIDECAR, 0).sum() == 0 and top_k_mask(SIDECAR, 9).all()


def test_classes_outside_the_mask_do_not_move():
    # top-1 of the sidecar is class 0 in rows 0-2; the anchor's class-0 rank is below 0.5 in rows 0 and 1
    out = correct(ANCHOR, SIDECAR, weight=0.5, top_k=1, threshold=0.5, budget=None)
    A, S = column_ranks(ANCHOR), column_ranks(SIDECAR)
    expected_mask = np.zeros((4, 3), dtype=bool)
    expected_mask[[0, 1], 0] = True
    np.testing.assert_array_equal(out.mask, expected_mask)
    np.testing.assert_array_equal(out.blended[~expected_mask], A[~expected_mask])
    # row 0: A = 0, S = 1 -> 0 + 0.5 * (1 - 0); row 1: A = 1/3, S = 2/3 -> 1/3 + 0.5/3
    np.testing.assert_allclose(out.blended[[0, 1], 0], [0.5, 0.5])
    np.testing.assert_allclose(out.movement, [0.5, 1 / 6, 0, 0])
    assert not out.capped.any()
    assert S[0, 0] == 1.0


def test_budget_caps_the_movement():
    free = correct(ANCHOR, SIDECAR, weight=1.0, top_k=3, threshold=1.01, budget=None)
    capped = correct(ANCHOR, SIDECAR, weight=1.0, top_k=3, threshold=1.01, budget=0.25)
    assert free.movement.max() > 0.25
    assert np.all(capped.movement <= 0.25 + 1e-12)
    np.testing.assert_array_equal(capped.capped, free.movement > 0.25)
    A = column_ranks(ANCHOR)
    # a capped chunk keeps the direction of its correction, scaled down
    row = int(np.argmax(free.movement))
    np.testing.assert_allclose(capped.blended[row] - A[row],
                               (free.blended[row] - A[row]) * 0.25 / free.movement[row])
    # weight 1, full mask, no budget: the sidecar's ranks replace the anchor's
    np.testing.assert_allclose(free.blended, column_ranks(SIDECAR))


def test_zero_weight_or_zero_budget_is_the_anchor():
    A = column_ranks(ANCHOR)
    np.testing.assert_array_equal(correct(ANCHOR, SIDECAR, weight=0.0, top_k=3, threshold=1.1, budget=None).blended, A)
    np.testing.assert_array_equal(correct(ANCHOR, SIDECAR, weight=1.0, top_k=3, threshold=1.1, budget=0.0).blended, A)


def test_threshold_on_scores():
    # anchor score below 0.15: only row 0 of class 0 (0.1)
    out = correct(ANCHOR, SIDECAR, weight=1.0, top_k=1, threshold=0.15, budget=None, threshold_space="score")
    assert out.mask.sum() == 1 and out.mask[0, 0]


@pytest.mark.parametrize("kwargs, match", [
    ({"weight": 1.5}, "weight"), ({"top_k": -1}, "top_k"), ({"budget": -0.1}, "budget"),
    ({"threshold_space": "prob"}, "threshold_space")])
def test_bad_knobs_are_named(kwargs, match):
    knobs = dict(weight=0.5, top_k=1, threshold=0.5, budget=None) | kwargs
    with pytest.raises(SidecarError, match=match):
        correct(ANCHOR, SIDECAR, **knobs)


def test_shape_and_nan_errors():
    with pytest.raises(SidecarError, match="same"):
        correct(ANCHOR, SIDECAR[:, :2], weight=0.5, top_k=1, threshold=0.5, budget=None)
    bad = SIDECAR.copy()
    bad[2, 1] = np.nan
    with pytest.raises(SidecarError, match="sidecar has a NaN.*row 2"):
        correct(ANCHOR, bad, weight=0.5, top_k=1, threshold=0.5, budget=None)


def test_apply_aligns_the_sidecar_to_the_blend_rows():
    """apply (the blend stage's and a bundle's one helper) corrects the blend by the sidecar row for row
    even when the sidecar's rows come in another order, and keeps the blend's row order."""
    ids = ["a_5", "a_10", "b_5", "b_10"]
    blend = pd.DataFrame(ANCHOR, columns=["x", "y", "z"])
    blend.insert(0, "row_id", ids)
    side = pd.DataFrame(SIDECAR[::-1], columns=["x", "y", "z"])
    side.insert(0, "row_id", ids[::-1])
    knobs = {"submission": "sidecar", "weight": 0.5, "top_k": 1, "threshold": 0.0, "budget": None,
             "threshold_space": "rank"}
    out = apply(blend, side, knobs)
    want = correct(ANCHOR, SIDECAR, weight=0.5, top_k=1, threshold=0.0, budget=None).blended
    assert out["row_id"].tolist() == ids and list(out.columns[1:]) == ["x", "y", "z"]
    np.testing.assert_array_equal(out[["x", "y", "z"]].to_numpy(), want)
    assert not np.allclose(want, ANCHOR)  # the correction moved something: the test can fail
