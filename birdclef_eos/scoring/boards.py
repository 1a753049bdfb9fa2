"""The public/private leaderboards: split the solution by file, score, rank, read Kaggle's scores."""
from __future__ import annotations


import pandas as pd

from birdclef_eos.scoring import metric

BOARDS = ("public", "private")


class BoardError(ValueError):
    pass


def file_of(row_ids: pd.Series) -> pd.Series:
    """``<file stem>_<end second>`` -> file stem."""
    return row_ids.astype(str).str.rsplit("_", n=1).str[0]


def split_solution(solution: pd.DataFrame, boards: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Solution rows of each board. ``boards`` has a file-stem column (the first one that is not
    ``board``) and ``board`` (public | private); every solution file must be on exactly one board."""
    if "board" not in boards.columns:
        raise BoardError("boards.csv: no 'board' column")
    stem_col = next(c for c in boards.columns if c != "board")
    bad = sorted(set(boards["board"]) - set(BOARDS))
    if bad:
        raise BoardError(f"boards.csv: unknown board(s) {bad}; expected {BOARDS}")
    board_of = dict(zip(boards[stem_col].astype(str), boards["board"]))
    files = file_of(solution["row_id"])
    orphans = sorted(set(files) - set(board_of))
    if orphans:
        raise BoardError(f"boards.csv: file(s) {orphans[:3]} of solution.csv are on no board")
    on = files.map(board_of)
    return {b: solution[on == b].reset_index(drop=True) for b in BOARDS}


def score_boards(sub: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> dict[str, float]:
    """One metric score per board, plus private minus public."""
    out = {b: metric.score(parts[b], sub) for b in BOARDS}
    out["difference"] = out["private"] - out["public"]
    return out


def add_ranks(scores: dict[str, dict]) -> dict[str, dict]:
    """Rank 1 = best on each board (ties share the better rank)."""
    if not scores:
        return {}
    frame = pd.DataFrame(scores).T
    for b in BOARDS:
        frame[f"{b}_rank"] = frame[b].astype(float).rank(ascending=False, method="min").astype(int)
    return {name: {k: (int(v) if k.endswith("_rank") else float(v)) for k, v in row.items()}
            for name, row in frame.iterrows()}
