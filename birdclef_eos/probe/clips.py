"""The probe's clips: a seeded draw of species and one 5-s window per clip from their focal recordings."""
from __future__ import annotations

import numpy as np
import pandas as pd

from birdclef_eos.audio.windows import random_starts
from birdclef_eos.probe.knn import ProbeError


def choose_species(recordings: pd.DataFrame, n_species: int, min_recordings: int,
                   rng: np.random.Generator) -> list[str]:
    """Seeded draw among species with at least ``min_recordings`` recordings; if too few
    qualify, the species with the most recordings (each needs two, or it can never be
    predicted right under recording-grouped folds)."""
    counts = recordings.groupby("primary_label").size().sort_index()
    eligible = counts[counts >= min_recordings].index.tolist()
    if len(eligible) >= n_species:
        return sorted(rng.choice(eligible, size=n_species, replace=False).tolist())
    usable = counts[counts >= 2].sort_values(ascending=False, kind="stable")
    if len(usable) < n_species:
        raise ProbeError(f"recordings.csv: only {len(usable)} species have two or more recordings; "
                         f"probe.species asks for {n_species}")
    return sorted(usable.index[:n_species].tolist())


def draw_clips(recordings: pd.DataFrame, n_species: int, n_clips: int, min_recordings: int,
               seed: int) -> pd.DataFrame:
    """One row per clip: recording_id, path, primary_label, read_s. A species with fewer
    recordings than clips gets several windows per recording (spread round-robin)."""
    rng = np.random.default_rng(seed)
    rows = []
    for species in choose_species(recordings, n_species, min_recordings, rng):
        recs = recordings[recordings["primary_label"] == species].sort_values("recording_id")
        recs = recs.iloc[rng.permutation(len(recs))[:n_clips]]
        per_rec = np.bincount(np.arange(n_clips) % len(recs), minlength=len(recs))
        for (_, rec), n in zip(recs.iterrows(), per_rec):
            for start in sorted(random_starts(rec["duration_s"], int(n), rng)):
                rows.append({"recording_id": rec["recording_id"], "path": rec["path"],
                             "primary_label": species, "read_s": start})
    return pd.DataFrame(rows)
