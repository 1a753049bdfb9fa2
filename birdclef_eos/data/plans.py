"""Window plans: which 5-s windows of which files go through the backbone.

A plan is a DataFrame with one row per window: where to read it (``path``, ``read_s``) and what
it is (the feature store's ``WINDOW_COLUMNS``). Focal recordings get seeded random windows;
soundscapes get every 5-s chunk, test chunks once per TTA shift.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.audio.windows import random_starts

INDEX_DTYPES = {"labels": str, "secondary_labels": str, "site": str, "primary_label": str,
                "recording_id": str, "soundscape_id": str, "row_id": str, "path": str}


class PlanError(ValueError):
    pass


def read_index_table(folder: str | Path, name: str) -> pd.DataFrame:
    """One table of data/index (``recordings``, ``soundscapes``, ``chunks``, ``species``)."""
    path = Path(folder) / f"{name}.csv"
    if not path.exists():
        raise PlanError(f"{path}: not found; run the dataset stage first")
    return pd.read_csv(path, keep_default_na=False, dtype=INDEX_DTYPES)


def focal_windows(recordings: pd.DataFrame, per_recording: int, seed: int) -> pd.DataFrame:
    """``per_recording`` seeded random windows of every focal recording."""
    rng = np.random.default_rng(seed)
    rows = []
    for rec in recordings.sort_values("recording_id").itertuples(index=False):
        for start in sorted(random_starts(rec.duration_s, per_recording, rng)):
            rows.append({"source": "focal", "file_id": rec.recording_id, "path": rec.path,
                         "start_s": start, "shift_s": 0.0, "read_s": start, "row_id": "",
                         "chunk": -1, "split": "focal", "primary_label": rec.primary_label,
                         "labels": rec.primary_label, "secondary_labels": rec.secondary_labels,
                         "site": "", "hour": -1})
    return pd.DataFrame(rows)


def soundscape_windows(soundscapes: pd.DataFrame, chunks: pd.DataFrame, shifts: list[float],
                       train_shifts: tuple[float, ...] = (0.0,)) -> pd.DataFrame:
    """Every chunk of every soundscape: training splits at ``train_shifts`` (the extract stage: shift 0
    only), test at every TTA shift."""
    paths = soundscapes.set_index("soundscape_id")["path"]
    missing = sorted(set(chunks["soundscape_id"]) - set(paths.index))
    if missing:
        raise PlanError(f"chunks.csv: soundscape_id {missing[:3]} not in soundscapes.csv")
    rows = []
    for c in chunks.sort_values(["soundscape_id", "chunk"]).itertuples(index=False):
        test = c.split == "test"
        for shift in (shifts if test else train_shifts):
            start = round(float(c.start_s) + float(shift), 3)  # where the shifted window starts
            rows.append({"source": "test" if test else "soundscape", "file_id": c.soundscape_id,
                         "path": paths[c.soundscape_id], "start_s": start,
                         "shift_s": float(shift), "read_s": start,
                         "row_id": c.row_id, "chunk": int(c.chunk), "split": c.split,
                         "primary_label": "", "labels": "" if test else c.labels,
                         "secondary_labels": "", "site": c.site, "hour": int(c.hour)})
    return pd.DataFrame(rows)


def window_plan(index: str | Path, per_recording: int, seed: int, shifts: list[float]) -> pd.DataFrame:
    """The extract stage's plan over the index folder: focal windows, then soundscape chunks."""
    plans = [focal_windows(read_index_table(index, "recordings"), per_recording, seed),
             soundscape_windows(read_index_table(index, "soundscapes"), read_index_table(index, "chunks"),
                                shifts)]
    return pd.concat([p for p in plans if len(p)], ignore_index=True)


def labelled_plan(index: str | Path, shifts: list[float]) -> pd.DataFrame:
    """The labelled soundscape chunks at each of ``shifts`` (the `extract_labelled` stage: the shifted
    windows that let an OOF judge test-time augmentation; shift 0 is already in the main store).
    No rows (and no columns) when ``shifts`` is empty or the index has no labelled soundscape."""
    chunks = read_index_table(index, "chunks")
    labelled = chunks[chunks["split"] == "labelled"]
    if labelled.empty or not shifts:
        return pd.DataFrame()
    return soundscape_windows(read_index_table(index, "soundscapes"), labelled, [], tuple(float(s) for s in shifts))


def plan_of_windows(index: str | Path, windows: pd.DataFrame) -> pd.DataFrame:
    """A plan over the rows of a feature store's windows.csv, in its order: each window read again
    from its file (focal: recordings.csv by ``file_id``; soundscape and test: soundscapes.csv) at
    its ``start_s`` (which holds the TTA shift, as ``read_s`` did). How a second backbone reads
    exactly the windows the first one did."""
    paths = pd.concat([read_index_table(index, "recordings").set_index("recording_id")["path"],
                       read_index_table(index, "soundscapes").set_index("soundscape_id")["path"]])
    focal = (windows["source"] == "focal").to_numpy()
    looked = [(("recordings" if f else "soundscapes"), i) for f, i in zip(focal, windows["file_id"].astype(str))]
    missing = [(n, row, i) for n, (row, (table, i)) in enumerate(zip(windows.index, looked)) if i not in paths.index]
    if missing:
        n, _, file_id = missing[0]
        raise PlanError(f"windows.csv row {n}: file_id {file_id!r} is in neither {index}/recordings.csv nor "
                        f"soundscapes.csv ({len(missing)} such rows): the index changed since the extraction")
    plan = windows.reset_index(drop=True).copy()
    plan["path"] = paths.reindex(plan["file_id"].astype(str)).to_numpy()
    plan["read_s"] = plan["start_s"].astype(float)
    return plan
