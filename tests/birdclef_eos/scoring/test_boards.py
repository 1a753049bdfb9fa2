"""Boards too small for the metric: the score is null with its reason, and tables say "undefined"."""
import json

import numpy as np
import pandas as pd

from birdclef_eos.report.tables import board_table, table2
from birdclef_eos.scoring import boards


def small_boards():
    """Public: files A, B where label x is present everywhere and y nowhere (no column has both);
    private: files C, D where x is present in C only (defined)."""
    solution = pd.DataFrame({"row_id": ["A_5", "A_10", "B_5", "B_10", "C_5", "C_10", "D_5", "D_10"],
                             "x": [1, 1, 1, 1, 1, 1, 0, 0], "y": [0] * 8})
    table = pd.DataFrame({"stem": list("ABCD"), "board": ["public", "public", "private", "private"]})
    return boards.split_solution(solution, table)


def sub(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"row_id": ["A_5", "A_10", "B_5", "B_10", "C_5", "C_10", "D_5", "D_10"],
                         "x": rng.random(8), "y": rng.random(8)})


def test_an_undefined_board_is_null_with_its_reason_and_the_other_board_is_scored():
    scores = boards.score_boards(sub(0), small_boards())
    assert scores["public"] is None and scores["difference"] is None
    assert 0.0 <= scores["private"] <= 1.0
    assert "no label column has both positives and negatives (4 rows of 2 file(s))" in scores["undefined"]["public"]
    assert "private" not in scores["undefined"]
    json.dumps(scores, allow_nan=False)  # what write_json does: no NaN reaches a metrics file


def test_ranks_skip_undefined_scores():
    ranked = boards.add_ranks({"a": boards.score_boards(sub(0), small_boards()),
                               "b": boards.score_boards(sub(1), small_boards())})
    assert ranked["a"]["public_rank"] is None and ranked["b"]["public_rank"] is None
    assert sorted([ranked["a"]["private_rank"], ranked["b"]["private_rank"]]) in ([1, 2], [1, 1])


def test_compare_marks_the_undefined_board_and_tables_say_undefined():
    parts = small_boards()
    subs = {n: sub(i).set_index("row_id") for i, n in enumerate(("ref", "other"))}
    compare = boards.compare(parts, subs, "ref", ["other"], n_boot=50, seed=0, confidence=0.9)
    assert "undefined" in compare["public"] and compare["public"]["vs"]["other"]["difference"] is None
    assert compare["public"]["scores"] == {"ref": None, "other": None}
    assert compare["private"]["vs"]["other"]["difference"] is not None
    local = boards.add_ranks({n: boards.score_boards(s.reset_index(), parts) for n, s in subs.items()})
    text = board_table("T", ["ref", "other"], local, {}, compare, "ref", 3, 0.9)
    other = next(line for line in text.splitlines() if line.startswith("| other"))
    cells = [c.strip() for c in other.strip("|").split("|")]
    assert cells[2] == "undefined" and cells[4] == "undefined" and cells[3] != "undefined"
    assert cells[8] == "undefined" and cells[9] != "undefined"
    row = next(line for line in table2(["ref"], local, {}, {}, {}, 3).splitlines() if line.startswith("| ref"))
    assert "| undefined |" in row
