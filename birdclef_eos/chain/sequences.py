"""Soundscape files as sequences of chunks: the layout ProtoSSM and the chain's post-processing read.

``file_index(rows)`` turns feature-store rows (one per chunk of a file at one shift) into
(file ids [F], row positions [F, T]) with T the files' chunk count; every file must have chunks
0..T-1 exactly once, else the error names the file.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


class SequenceError(ValueError):
    pass


def file_index(rows: pd.DataFrame, where: str = "windows.csv") -> tuple[list[str], np.ndarray]:
    """(file ids in first-seen order, [F, T] positions into ``rows`` ordered by chunk)."""
    rows = rows.reset_index(drop=True)
    files = list(dict.fromkeys(rows["file_id"]))
    T = int(rows["chunk"].max()) + 1 if len(rows) else 0
    out = np.full((len(files), T), -1, dtype=np.int64)
    pos = {f: i for i, f in enumerate(files)}
    for i, (f, c) in enumerate(zip(rows["file_id"], rows["chunk"].astype(int))):
        if out[pos[f], c] != -1:
            raise SequenceError(f"{where}: file {f} has chunk {c} twice")
        out[pos[f], c] = i
    gaps = np.argwhere(out < 0)
    if len(gaps):
        f, c = gaps[0]
        raise SequenceError(f"{where}: file {files[f]} lacks chunk {c} (every file needs chunks 0..{T - 1})")
    return files, out
