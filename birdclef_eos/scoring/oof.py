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
