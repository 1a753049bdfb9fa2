"""The public/private leaderboards: split the solution by file, score, rank, read Kaggle's scores."""
from __future__ import annotations


import pandas as pd

from birdclef_eos.scoring import metric
from birdclef_eos.scoring.bootstrap import paired_bootstraps

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


def undefined_reason(part: pd.DataFrame, board: str) -> str | None:
    """Why macro-AUC cannot exist on this board's rows (None when it can): no label column has both
    a positive and a negative, as on a board of a file or two."""
    labels = part[[c for c in part.columns if c != "row_id"]].to_numpy()
    positives = labels.sum(axis=0)
    if ((positives > 0) & (positives < len(labels))).any():
        return None
    return (f"undefined on the {board} board: no label column has both positives and negatives "
            f"({len(labels)} rows of {file_of(part['row_id']).nunique()} file(s))")


def score_boards(sub: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> dict:
    """One metric score per board, plus private minus public. A board where the score does not
    exist gets None, and ``undefined`` {board: reason} says why; the difference is then None."""
    out, undefined = {}, {}
    for b in BOARDS:
        reason = undefined_reason(parts[b], b)
        out[b] = None if reason else metric.score(parts[b], sub)
        if reason:
            undefined[b] = reason
    out["difference"] = None if undefined else out["private"] - out["public"]
    if undefined:
        out["undefined"] = undefined
    return out


def add_ranks(scores: dict[str, dict]) -> dict[str, dict]:
    """Rank 1 = best on each board (ties share the better rank); an undefined score has rank None."""
    out = {name: dict(row) for name, row in scores.items()}
    for b in BOARDS:
        values = pd.Series({n: row[b] for n, row in scores.items()}, dtype=float)
        ranks = values.rank(ascending=False, method="min", na_option="keep")
        for name in out:
            out[name][f"{b}_rank"] = None if pd.isna(ranks[name]) else int(ranks[name])
    return out


def compare(parts: dict[str, pd.DataFrame], subs: dict[str, pd.DataFrame], reference: str, others: list[str],
            n_boot: int, seed: int, confidence: float) -> dict[str, dict]:
    """Per board: each submission's score, and each of ``others`` minus ``reference`` with its
    paired bootstrap interval over the board's files. ``subs``: name -> frame indexed by row_id.
    Returns {board: {"scores": {name: auc}, "vs": {other: {difference, low, high, n_files}}}}."""
    out = {}
    for board, part in parts.items():
        cols = [c for c in part.columns if c != "row_id"]
        ids = part["row_id"].astype(str)
        for name, sub in subs.items():
            missing = sorted(set(ids) - set(sub.index))
            if missing:
                raise BoardError(f"submission '{name}' lacks {len(missing)} row(s) of the {board} board, e.g. {missing[:2]}")
        reason = undefined_reason(part, board)
        if reason:
            out[board] = {"scores": {n: None for n in subs}, "undefined": reason,
                          "vs": {n: {"difference": None, "low": None, "high": None, "n_files": None} for n in others}}
            continue
        truth = part[cols].to_numpy()
        mat = {n: s.reindex(ids)[cols].to_numpy(dtype=float) for n, s in subs.items()}
        ci = paired_bootstraps(truth, mat[reference], {n: mat[n] for n in others}, file_of(ids).to_numpy(),
                               n_boot, seed, confidence)
        scores = {n: float(metric.macro_auc(truth, m)) for n, m in mat.items()}
        out[board] = {"scores": scores, "vs": {n: flip(ci[n]) for n in others}}
    return out


def flip(interval) -> dict:
    """The interval of (other - reference) from paired_bootstraps' (reference - other)."""
    d = interval.as_dict()
    neg = lambda x: None if x is None else -x  # noqa: E731  (null intervals: a single file)
    return {"difference": neg(d["difference"]), "low": neg(d["high"]), "high": neg(d["low"]), "n_files": d.get("n_files")}
