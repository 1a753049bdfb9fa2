"""The spectrogram store the `spectrogram` stage writes and the SED models read.

A folder holding ``windows.csv`` (the feature store's columns, `birdclef_eos.data.features.WINDOW_COLUMNS`,
one row per spectrogram), ``mels.npy`` (float16 ``[N, n_mels, frames]``, standardised log-mel,
`birdclef_eos.audio.spectrogram.log_mel`) and ``spec.json`` (the `MelSpec`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.audio.spectrogram import MelSpec
from birdclef_eos.data.features import WINDOW_COLUMNS
from birdclef_eos.io.files import atomic_dir, read_json, write_json


class SpectrogramStoreError(ValueError):
    pass


@dataclass
class SpectrogramStore:
    """windows: one row per spectrogram (WINDOW_COLUMNS); mels: float16 [N, n_mels, frames]
    (memory-mapped, read-only); spec: the settings that made them."""
    windows: pd.DataFrame
    mels: np.ndarray
    spec: MelSpec


def save(folder: str | Path, windows: pd.DataFrame, mels: np.ndarray, spec: MelSpec) -> None:
    """Write the store atomically; ``mels`` must be finite, one [n_mels, frames] per window."""
    missing = [c for c in WINDOW_COLUMNS if c not in windows.columns]
    if missing:
        raise SpectrogramStoreError(f"windows table lacks columns {missing}")
    if mels.ndim != 3 or len(mels) != len(windows) or mels.shape[1] != spec.n_mels:
        raise SpectrogramStoreError(f"mels has shape {mels.shape}; expected [{len(windows)}, {spec.n_mels}, frames]")
    finite = np.isfinite(mels.reshape(len(mels), -1)).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise SpectrogramStoreError(f"mels row {bad} (file {windows.iloc[bad]['file_id']}) is not finite")
    with atomic_dir(folder) as tmp:
        windows[WINDOW_COLUMNS].to_csv(tmp / "windows.csv", index=False)
        np.save(tmp / "mels.npy", mels.astype(np.float16))
        write_json(tmp / "spec.json", spec.as_dict())


def load(folder: str | Path) -> SpectrogramStore:
    """The store in ``folder``, ``mels`` memory-mapped read-only."""
    folder = Path(folder)
    for name in ("windows.csv", "mels.npy", "spec.json"):
        if not (folder / name).exists():
            raise SpectrogramStoreError(f"{folder / name}: not found; run the spectrogram stage first")
    windows = pd.read_csv(folder / "windows.csv", keep_default_na=False,
                          dtype={"labels": str, "secondary_labels": str, "row_id": str,
                                 "site": str, "primary_label": str, "file_id": str})
    spec = MelSpec.from_dict(read_json(folder / "spec.json", "written by the spectrogram stage"))
    mels = np.load(folder / "mels.npy", mmap_mode="r")
    if len(mels) != len(windows):
        raise SpectrogramStoreError(f"{folder}/mels.npy has {len(mels)} rows, windows.csv {len(windows)}")
    return SpectrogramStore(windows=windows, mels=mels, spec=spec)
