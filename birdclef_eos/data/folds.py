"""Five-fold splits that never put one file in two folds (paper section 4.2).

Labelled soundscapes are split by file: files are ordered by the sha1 of ``salt:file_id`` and dealt
round-robin to the folds, so the split is stable (it depends only on the names and the salt), the
folds get nearly equal numbers of files, and every labelled chunk is out-of-fold exactly once.
Focal recordings are split by recording the same way, dealt within each primary label so every
species with enough recordings is seen in every fold's training part.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


class FoldError(ValueError):
    pass


def stable_hash(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:16], 16)


def deal_files(file_ids: list[str], n_folds: int, salt: str, offset: int = 0) -> dict[str, int]:
    """Fold of each distinct file: round-robin over the files ordered by hash."""
    ordered = sorted(set(file_ids), key=lambda f: (stable_hash(f"{salt}:{f}"), f))
    return {f: (i + offset) % n_folds for i, f in enumerate(ordered)}


def assign_folds(windows: pd.DataFrame, n_folds: int = 5, salt: str = "folds") -> np.ndarray:
    """Fold index per row of ``windows`` (features.csv columns); -1 for rows that are never
    trained or validated on (unlabelled and test soundscapes)."""
    if n_folds < 2:
        raise FoldError(f"n_folds must be at least 2, got {n_folds}")
    for column in ("source", "split", "file_id", "primary_label"):
        if column not in windows.columns:
            raise FoldError(f"windows table lacks column '{column}'")
    folds = np.full(len(windows), -1, dtype=np.int64)
    focal = (windows["source"] == "focal").to_numpy()
    labelled = ((windows["source"] == "soundscape") & (windows["split"] == "labelled")).to_numpy()

    soundscape_fold = deal_files(windows.loc[labelled, "file_id"].tolist(), n_folds, salt)
    folds[labelled] = windows.loc[labelled, "file_id"].map(soundscape_fold).to_numpy()
    focal_fold: dict[str, int] = {}
    for label, group in windows[focal].groupby("primary_label", sort=True):
        # start each species at a hash-chosen fold so species with one recording spread out
        offset = stable_hash(f"{salt}:species:{label}") % n_folds
        focal_fold.update(deal_files(group["file_id"].tolist(), n_folds, salt, offset))
    folds[focal] = windows.loc[focal, "file_id"].map(focal_fold).to_numpy()
    return folds
