"""Blend arithmetic on hand cases: weights by name, rank space over all rows, taxonomy after the blend."""
import numpy as np
import pandas as pd
import pytest

from birdclef_eos.scoring.blend import Blend, BlendError, align, blend, mix, order_blends, rank_columns, resolve_weights
from birdclef_eos.scoring.shares import effective_shares


def frame(ids, cols, values):
    out = pd.DataFrame(np.asarray(values, dtype=float), columns=cols)
    out.insert(0, "row_id", ids)
    return out


def test_weights_resolve_the_shared_weight_and_the_rest():
    w = resolve_weights("eos7", {"base": "rest", "v6": "weight"}, {"weight": 0.07})
    assert w == pytest.approx({"base": 0.93, "v6": 0.07})
    w = resolve_weights("eos9", {"a": 0.012, "b": 0.021, "base": "rest"}, {"weight": 0.07})
    assert w["base"] == pytest.approx(0.967) and list(w) == ["a", "b", "base"]


def test_weights_must_sum_to_one_unless_normalised():
    with pytest.raises(BlendError, match=r"blends.x.parts: weights sum to 0.9, not 1"):
        resolve_weights("x", {"a": 0.5, "b": 0.4}, {})
    assert resolve_weights("x", {"a": 0.5, "b": 0.5 * 0.8}, {}, normalise=True) == pytest.approx({"a": 5 / 9, "b": 4 / 9})
    with pytest.raises(BlendError, match="more than one part is `rest`"):
        resolve_weights("x", {"a": "rest", "b": "rest"}, {})
    with pytest.raises(BlendError, match="nothing left for `rest`"):
        resolve_weights("x", {"a": 0.8, "b": 0.7, "c": "rest"}, {})
    with pytest.raises(BlendError, match=r"blends.x.parts.b: 'wieght' is neither"):
        resolve_weights("x", {"a": "rest", "b": "wieght"}, {"weight": 0.1})


def test_prob_blend_is_the_weighted_mean():
    a = frame(["f_5", "f_10"], ["s1", "s2"], [[0.2, 0.4], [0.6, 0.8]])
    b = frame(["f_10", "f_5"], ["s1", "s2"], [[0.0, 1.0], [1.0, 0.0]])  # rows in another order: aligned by row_id
    out = blend({"a": a, "b": b}, Blend("x", {"a": 0.75, "b": 0.25}, "prob", None))
    assert out["row_id"].tolist() == ["f_5", "f_10"]
    np.testing.assert_allclose(out[["s1", "s2"]].to_numpy(), [[0.75 * 0.2 + 0.25, 0.75 * 0.4],
                                                              [0.75 * 0.6, 0.75 * 0.8 + 0.25]])


def test_ranks_are_per_class_over_all_rows():
    P = np.array([[0.1, 0.9], [0.3, 0.9], [0.2, 0.1], [0.9, 0.5]])
    np.testing.assert_allclose(rank_columns(P), [[0, 5 / 6], [2 / 3, 5 / 6], [1 / 3, 0], [1, 1 / 3]])
    # rank space ignores the scale of a part: a monotone transform of a part changes nothing
    a, b = np.random.default_rng(0).random((2, 20, 3))
    ranked = mix({"a": a, "b": b}, {"a": 0.6, "b": 0.4}, "rank")
    np.testing.assert_allclose(ranked, mix({"a": a ** 3, "b": np.log(b)}, {"a": 0.6, "b": 0.4}, "rank"))
    assert not np.allclose(mix({"a": a, "b": b}, {"a": 0.6, "b": 0.4}, "prob"),
                           mix({"a": a ** 3, "b": b}, {"a": 0.6, "b": 0.4}, "prob"))


def test_taxonomy_smoothing_comes_after_the_blend():
    species = pd.DataFrame({"primary_label": ["s1", "s2", "s3"], "genus": ["G", "G", "H"],
                            "class_name": ["Aves", "Aves", "Aves"]})
    a = frame(["f_5"], ["s1", "s2", "s3"], [[1.0, 0.0, 0.0]])
    b = frame(["f_5"], ["s1", "s2", "s3"], [[0.0, 0.0, 1.0]])
    out = blend({"a": a, "b": b}, Blend("x", {"a": 0.5, "b": 0.5}, "prob", (0.2, 0.0)), species)
    # blend [0.5, 0, 0.5]; genus G mean 0.25: s1 = 0.8 * 0.5 + 0.2 * 0.25 = 0.45, s2 = 0.05; s3 alone in H
    np.testing.assert_allclose(out[["s1", "s2", "s3"]].to_numpy(), [[0.45, 0.05, 0.5]])
    out = blend({"a": a, "b": b}, Blend("x", {"a": 0.5, "b": 0.5}, "prob", (0.0, 0.3)), species)
    np.testing.assert_allclose(out[["s1", "s2", "s3"]].to_numpy(), [[0.7 * 0.5 + 0.1, 0.1, 0.7 * 0.5 + 0.1]])


def test_parts_that_disagree_are_named():
    a = frame(["f_5", "f_10"], ["s1", "s2"], [[0, 0], [0, 0]])
    with pytest.raises(BlendError, match=r"parts 'a' and 'b' disagree on rows: 'b' lacks 1"):
        align({"a": a, "b": frame(["f_5", "g_10"], ["s1", "s2"], [[0, 0], [0, 0]])})
    with pytest.raises(BlendError, match=r"parts 'a' and 'c' disagree on label columns: 'c' has missing \['s2'\], extra \['s9'\]"):
        align({"a": a, "c": frame(["f_5", "f_10"], ["s1", "s9"], [[0, 0], [0, 0]])})
    with pytest.raises(BlendError, match="the same labels in another order"):
        align({"a": a, "d": frame(["f_5", "f_10"], ["s2", "s1"], [[0, 0], [0, 0]])})


def test_blends_are_ordered_by_their_parts():
    entries = {"eos9": {"parts": {"anchor": "rest", "v6": 0.07}}, "anchor": {"parts": {"base": "rest", "alt": 0.1}}}
    assert order_blends(entries, {"base", "alt", "v6"}) == ["anchor", "eos9"]
    with pytest.raises(BlendError, match=r"blends.eos9: part\(s\) \['v6'\] are neither"):
        order_blends(entries, {"base", "alt"})
    with pytest.raises(BlendError, match="cycle"):
        order_blends({"x": {"parts": {"y": "rest"}}, "y": {"parts": {"x": "rest"}}}, set())


def test_effective_shares_show_a_probability_part_drowned_by_a_rank_valued_one():
    rng = np.random.default_rng(0)
    base = rank_columns(rng.random((200, 6)))                 # every column spread over [0, 1]
    head = 0.08 * rng.random((200, 6))                        # a probability of a few hundredths
    weights = {"base": 0.93, "head": 0.07}
    prob = effective_shares({"base": base, "head": head}, weights, "prob")
    rank = effective_shares({"base": base, "head": head}, weights, "rank")
    assert prob["head"]["weight"] == 0.07 and prob["head"]["effective"] < 0.01     # far below its 7 %
    assert abs(rank["head"]["effective"] - 0.07) < 0.005                            # on one scale: its weight
    assert abs(prob["base"]["effective"] + prob["head"]["effective"] - 1) < 0.01
    flat = effective_shares({"a": np.ones((5, 2)), "b": np.ones((5, 2))}, {"a": 0.5, "b": 0.5}, "prob")
    assert flat["a"]["effective"] is None                                           # nothing varies: no share
