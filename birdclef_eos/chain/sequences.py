"""Soundscape files as sequences of chunks: the layout ProtoSSM and the chain's post-processing read.

``file_index(rows)`` turns feature-store rows (one per chunk of a file at one shift) into
(file ids [F], row positions [F, T]) with T the files' chunk count; every file must have chunks
0..T-1 exactly once, else the error names the file. ``file_sequences`` gathers ProtoSSM's inputs
(embeddings, site slot, hour, targets) in that layout; the protossm stage and a Kaggle kernel
(bundle/infer.py) both call it, so the kernel feeds the fold models the same arrays.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from birdclef_eos.scoring.oof import truth_matrix


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


def file_sequences(rows: pd.DataFrame, inputs: dict, logits, slots: dict, labels: list[str],
                   where: str = "windows.csv") -> dict:
    """ProtoSSM's inputs of the files in ``rows`` (one shift; feature-store rows, indexed into the
    arrays of ``inputs`` (name -> [N, C], concatenated in order) and ``logits`` ([N, K] or None)).

    Returns {"files" [F], "row_ids" [F, T], "emb" [F, T, E] float32, "site" [F] int64 (``slots``;
    an unknown site takes slot 0), "hour" [F] int64 in 0..23, "y" [F, T, K] float32 (from
    ``labels`` column), "logits" [F, T, K] float32 or None}.
    """
    files, pos = file_index(rows, where)
    idx = rows.index.to_numpy()[pos]                       # feature-store rows [F, T]
    first = rows.loc[idx[:, 0]]
    emb = np.concatenate([np.asarray(a[idx.ravel()], dtype=np.float32) for a in inputs.values()], axis=1)
    K = len(labels)
    return {"files": files, "row_ids": rows.loc[idx.ravel(), "row_id"].to_numpy().reshape(idx.shape),
            "emb": emb.reshape(*idx.shape, -1),
            "site": np.array([slots.get(str(s), 0) for s in first["site"]], dtype=np.int64),
            "hour": np.clip(first["hour"].astype(int).to_numpy(), 0, 23).astype(np.int64),
            "y": truth_matrix(rows.loc[idx.ravel(), "labels"], labels).astype(np.float32).reshape(*idx.shape, K),
            "logits": None if logits is None else np.asarray(logits[idx.ravel()], dtype=np.float32).reshape(*idx.shape, K)}
