"""Out-of-fold predictions read back for scoring: the OOF file of a head and the truth of its rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class OOFError(ValueError):
    pass


def truth_matrix(cells: pd.Series, labels: list[str]) -> np.ndarray:
    """``;``-joined label cells -> [N, K] 0/1 float64 over ``labels`` (labels not among them are ignored)."""
    index = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(cells), len(labels)), dtype=np.float64)
    for i, cell in enumerate(cells):
        for label in filter(None, (part.strip() for part in str(cell).split(";"))):
            if label in index:
                y[i, index[label]] = 1.0
    return y


def read_oof(path: str | Path, labels: list[str], row_ids: list[str], made_by: str) -> np.ndarray:
    """[len(row_ids), K] probabilities of predictions/oof/<name>/oof.csv in ``row_ids`` order;
    a missing file or a missing row or label names the file (and ``made_by``, the stage to run)."""
    path = Path(path)
    if not path.exists():
        raise OOFError(f"{path}: missing; run {made_by}")
    frame = pd.read_csv(path, dtype={"row_id": str}).set_index("row_id").reindex(row_ids)
    if frame[labels].isna().any().any():
        raise OOFError(f"{path}: rows or label columns differ from the reference's OOF")
    return frame[labels].to_numpy(dtype=np.float64)


def choose_shift_set(scores: list[tuple[list[float], float]], digits: int = 6) -> int:
    """Index of the TTA shift set with the best OOF score in ``scores`` ([(shifts, score)]): the highest
    score at ``digits`` decimals (the resolution the metrics record); a tie goes to the set with fewer
    shifts (fewer backbone passes at inference, and no gain shown for the extra ones), then to the earlier
    entry. A NaN score (an OOF with no scorable class) never beats a number."""
    if not scores:
        raise OOFError("choose_shift_set: no candidate shift set")

    def rank(i: int):
        shifts, score = scores[i]
        known = np.isfinite(score)
        return (0 if known else 1, -round(float(score), digits) if known else 0.0, len(shifts), i)

    return min(range(len(scores)), key=rank)
