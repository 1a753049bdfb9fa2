"""The real-data mode's local hidden set: seeded, grouped, labels moved into the solution."""
from __future__ import annotations

import pandas as pd
import pytest

from birdclef_eos.data.holdout import HoldoutError, deal_boards, hold_out

ORDER = ["a", "b", "c"]


def scapes(n: int = 8) -> pd.DataFrame:
    rows = [dict(soundscape_id=f"BC2026_Train_{i:04d}_S0{i % 2}_2024052{i // 4}_060000", file=f"f{i}.ogg",
                 split="labelled" if i < n - 1 else "unlabelled", duration_s=10.0, sample_rate=32000,
                 board="", site=f"S0{i % 2}", date=f"2024052{i // 4}", hour=6) for i in range(n)]
    return pd.DataFrame(rows)


def labels(table: pd.DataFrame) -> pd.DataFrame:
    rows = [dict(soundscape_id=s, chunk=0, labels="a;c") for s in table.soundscape_id[table.split == "labelled"]]
    return pd.DataFrame(rows)


def test_same_seed_same_holdout_and_labels_move_to_the_solution():
    t = scapes()
    first = hold_out(t, labels(t), ORDER, 0.4, "file", 3, 0.5)
    again = hold_out(t, labels(t), ORDER, 0.4, "file", 3, 0.5)
    pd.testing.assert_frame_equal(first.solution, again.solution)
    pd.testing.assert_frame_equal(first.boards, again.boards)
    held = set(first.hidden.soundscape_id)
    assert len(held) == 3 and set(first.hidden.split) == {"test"}  # round(0.4 * 7 labelled files)
    assert held.isdisjoint(first.scapes.soundscape_id) and len(first.scapes) == len(t) - 3
    assert set(first.boards.board) == {"public", "private"}
    assert list(first.solution.columns) == ["row_id", *ORDER]
    assert len(first.solution) == 3 * 2  # two 5-s chunks per 10-s file
    chunk0 = first.solution[first.solution.row_id.str.endswith("_5")]
    assert chunk0[ORDER].values.tolist() == [[1, 0, 1]] * 3
    assert first.solution[first.solution.row_id.str.endswith("_10")][ORDER].values.sum() == 0
    other = hold_out(t, labels(t), ORDER, 0.4, "file", 4, 0.5)
    assert set(other.hidden.soundscape_id) != held or not other.boards.equals(first.boards)


def test_site_date_groups_stay_together():
    t = scapes()
    h = hold_out(t, labels(t), ORDER, 0.3, "site_date", 0, 0.5)
    key = t.site + "_" + t.date
    held_keys = set(key[t.soundscape_id.isin(h.hidden.soundscape_id)])
    left = t[t.split == "labelled"]
    assert not set(key[left.index][~left.soundscape_id.isin(h.hidden.soundscape_id)]) & held_keys


def test_share_zero_is_no_local_board_and_bad_inputs_say_why():
    t = scapes()
    assert hold_out(t, labels(t), ORDER, 0.0, "file", 0, 0.3) is None
    with pytest.raises(HoldoutError, match="at least 2"):
        hold_out(t.iloc[-2:], labels(t.iloc[-2:]), ORDER, 0.5, "file", 0, 0.3)
    with pytest.raises(HoldoutError, match="not one of"):
        hold_out(t, labels(t), ORDER, 0.5, "week", 0, 0.3)
    with pytest.raises(HoldoutError, match=r"\[0, 1\)"):
        hold_out(t, labels(t), ORDER, 1.0, "file", 0, 0.3)


def test_both_boards_get_a_file():
    import numpy as np
    assert deal_boards(["x", "y"], 0.0, np.random.default_rng(0)).count("public") == 1
    assert deal_boards(["x", "y", "z"], 1.0, np.random.default_rng(0)).count("private") == 1
    assert deal_boards(["x"], 0.3, np.random.default_rng(0)) == ["private"]
