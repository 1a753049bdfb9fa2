"""The blend space chosen on the OOF: the higher macro-AUC at the metrics' resolution, a tie to prob,
and the comparison's numbers are what the two blends score."""
import json

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.scoring.blend import mix, rank_columns
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.space import SpaceError, chosen_space, compare_spaces, compare_spaces_on_oof, read_parts


def test_the_higher_score_wins_and_a_tie_goes_to_prob():
    assert chosen_space({"rank": 0.9001, "prob": 0.9}) == "rank"
    assert chosen_space({"rank": 0.8999, "prob": 0.9}) == "prob"
    assert chosen_space({"rank": 0.9000001, "prob": 0.9}) == "prob"  # equal at 6 decimals
    assert chosen_space({"rank": float("nan"), "prob": 0.9}) == "prob"
    assert chosen_space({"rank": 0.5, "prob": float("nan")}) == "rank"


def world(seed=0, n_files=30, per_file=12, k=6):
    rng = np.random.default_rng(seed)
    n = n_files * per_file
    y = (rng.random((n, k)) < 0.2).astype(float)
    y[0], y[1] = 1, 0
    groups = np.repeat([f"f{i}" for i in range(n_files)], per_file)
    return rng, y, groups


def test_a_small_scale_head_that_knows_what_the_base_misses_is_heard_only_in_rank():
    rng, y, groups = world()
    base = rank_columns(0.6 * y + rng.normal(size=y.shape))             # rank-valued, weakly informed
    head = 0.02 * (2.0 * y + rng.normal(size=y.shape)) + 0.05          # well informed, columns of hundredths
    out = compare_spaces(y, base, head, groups, 0.3, lambda P: P, draws=50, seed=0, confidence=0.95)
    for sp in ("prob", "rank"):
        expect = macro_auc(y > 0.5, mix({"base": base, "head": head}, {"base": 0.7, "head": 0.3}, sp))
        assert out[sp]["macro_auc"] == pytest.approx(expect, abs=1e-6)
    assert out["chosen"] == "rank" and out["rank"]["macro_auc"] > out["prob"]["macro_auc"]
    assert out["rank_minus_prob"]["difference"] == pytest.approx(out["rank"]["macro_auc"] - out["prob"]["macro_auc"],
                                                                 abs=1e-5)
    assert out["rank_minus_prob"]["low"] > 0  # the head's share: nothing in prob, its weight in rank
    assert out["prob"]["effective_share"]["head"]["effective"] < 0.05 < out["rank"]["effective_share"]["head"]["effective"]


def test_the_smoothing_is_applied_to_both_spaces_before_scoring():
    rng, y, groups = world(1)
    base, head = rng.random(y.shape), rng.random(y.shape)
    flip = lambda P: -P  # noqa: E731  (a smoothing that reverses every ranking: both blends score 1 - AUC)
    plain = compare_spaces(y, base, head, groups, 0.5, lambda P: P, 20, 0, 0.95)
    flipped = compare_spaces(y, base, head, groups, 0.5, flip, 20, 0, 0.95)
    for sp in ("prob", "rank"):
        assert flipped[sp]["macro_auc"] == pytest.approx(1 - plain[sp]["macro_auc"], abs=1e-6)


def base_folder(tmp_path, oof: bool = True):
    """A chunk index and the base stage's OOF folder (base.csv, reference.csv, parts.json)."""
    rng, y, groups = world(2, n_files=10, per_file=4, k=3)
    labels = ["0123", "abc", "77"]
    ids = [f"{g}_{i}" for i, g in enumerate(groups)]
    cells = [";".join(lbl for lbl, on in zip(labels, row) if on) for row in y]
    pd.DataFrame({"row_id": ids, "labels": cells, "soundscape_id": groups}).to_csv(tmp_path / "chunks.csv", index=False)
    folder = tmp_path / "oof"
    folder.mkdir()
    for name in ("base", "reference"):
        pd.DataFrame(rng.random(y.shape), columns=labels).assign(row_id=ids)[["row_id", *labels]].to_csv(
            folder / f"{name}.csv", index=False)
    parts = {"oof": {"base": "base.csv", "reference": "reference.csv"}, "reference": "attn"} if oof else \
        {"oof": None, "why": "base.source: file"}
    (folder / "parts.json").write_text(json.dumps(parts))
    return folder, labels


def test_on_oof_is_the_comparison_on_the_base_folder(tmp_path):
    """What the blend and ceiling stages each read and compared before, one call now."""
    folder, labels = base_folder(tmp_path)
    result, reference = compare_spaces_on_oof(folder, tmp_path / "chunks.csv", labels, 0.3, lambda P: P, 20, 0, 0.95)
    chunks = pd.read_csv(tmp_path / "chunks.csv", keep_default_na=False, dtype={"labels": str, "row_id": str})
    y, base, head, groups, parts = read_parts(folder, chunks, labels)
    assert reference == "attn"
    assert result == compare_spaces(y, base, head, groups, 0.3, lambda P: P, 20, 0, 0.95)


def test_a_base_without_oof_is_an_error_or_none(tmp_path):
    """The blend stage needs the comparison (an error naming the folder); the ceiling stage skips it."""
    folder, labels = base_folder(tmp_path, oof=False)
    args = (folder, tmp_path / "chunks.csv", labels, 0.3, lambda P: P, 20, 0, 0.95)
    assert compare_spaces_on_oof(*args, required=False) is None
    with pytest.raises(SpaceError, match="no OOF"):
        compare_spaces_on_oof(*args)
