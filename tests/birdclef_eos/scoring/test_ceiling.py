"""The control partner reaches its target AUC; the plateau curve's gain is the blend minus the base."""
import numpy as np
import pytest

from birdclef_eos.scoring.ceiling import control_partner, curve, quantile_map
from birdclef_eos.scoring.metric import macro_auc


def data(seed=0, n=240, k=6):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.2).astype(float)
    like = rng.beta(0.5, 3.0, size=(n, k))
    return y, like, np.repeat(np.arange(n // 12), 12)


@pytest.mark.parametrize("target", [0.6, 0.8, 0.94, 0.99])
def test_control_partner_reaches_its_target_auc(target):
    y, like, _ = data()
    scores, auc = control_partner(y, like, target, seed=1, tol=0.002)
    assert abs(macro_auc(y, scores) - target) <= 0.002 and auc == pytest.approx(macro_auc(y, scores))
    # it has the real submission's values per class, only reordered
    np.testing.assert_allclose(np.sort(scores, axis=0), np.sort(like, axis=0))


def test_quantile_map_keeps_the_order_and_takes_the_values():
    v = np.array([[3.0], [1.0], [2.0]])
    np.testing.assert_allclose(quantile_map(v, np.array([[10.0], [20.0], [30.0]])), [[30.0], [10.0], [20.0]])


def test_curve_gain_is_blend_minus_base_with_a_band_around_it():
    y, like, groups = data(1)
    partner, _ = control_partner(y, like, 0.99, seed=2)
    blends = {w: (1 - w) * like + w * partner for w in (0.0, 0.1, 0.3)}
    c = curve(y, like, blends, groups, n_boot=100, seed=0, confidence=0.9)
    assert c.weights == [0.0, 0.1, 0.3] and c.gain[0] == 0.0 and c.gain_low[0] == 0.0
    for i, w in enumerate(c.weights):
        assert c.score[i] == pytest.approx(macro_auc(y, blends[w]))
        assert c.gain[i] == pytest.approx(c.score[i] - macro_auc(y, like))
        assert c.low[i] <= c.score[i] <= c.high[i]
    assert c.gain[2] > 0.05 and c.gain_low[2] > 0  # a near-perfect partner lifts a random base


def test_a_board_of_one_file_has_scores_but_no_band():
    y, like, _ = data(2, n=24)
    partner, _ = control_partner(y, like, 0.9, seed=0, tol=0.02)
    c = curve(y, like, {0.0: like, 0.5: 0.5 * like + 0.5 * partner}, np.zeros(len(y)), n_boot=20, seed=0, confidence=0.9)
    assert c.score[1] == pytest.approx(macro_auc(y, 0.5 * like + 0.5 * partner))
    assert np.isnan(c.low).all() and np.isnan(c.gain_low).all() and c.as_dict()["gain_low"] == [None, None]
