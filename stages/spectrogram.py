"""Stage `spectrogram`: standardised log-mel spectrograms of the windows the SED reads.

Windows: those of `extract` (data/features/windows.csv), restricted to what the SED models need:
every focal window, every training soundscape chunk (shift 0: labelled and unlabelled) and the
test chunks at the `spectrogram.test_shifts` shifts (default [0.0]: the chain blends shift-0
chunks). Each window is read from its audio file at the dataset's rate
(`birdclef_eos.audio.windows.read_file_windows`), turned into a float32 log-mel
(`birdclef_eos.audio.spectrogram.log_mel`) and cached as float16 in data/spectrograms/
({windows.csv, mels.npy, spec.json}; docs/contracts.md).

Cache or on the fly: the SED reads every training window once per epoch, so a cache that costs one
pass is cheaper than recomputing each epoch as soon as it trains two epochs; the stage reports the
time it took to compute (decode + log-mel) and the notebook times reading the cache back
(benchmarks/spectrogram_cache.py compares both side by side).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.audio.config import SpectrogramParams
from birdclef_eos.audio.spectrogram import MelSpec, log_mel
from birdclef_eos.audio.windows import read_file_windows
from birdclef_eos.data import features, spectrograms
from birdclef_eos.data.plans import read_index_table
from stages.paths import FEATURES, INDEX, SPECTROGRAMS

PARAMS = ("spectrogram", "dataset.sample_rate")


class SpectrogramStageError(ValueError):
    pass


@dataclass
class SpectrogramResult:
    """What the spectrogram notebook shows.

    windows: rows per split; shape: mels.npy's [N, n_mels, frames]; spec: the MelSpec as a dict;
    megabytes: mels.npy's size; seconds_decode / seconds_mel: time reading audio / computing log-mels;
    seconds: wall time of the stage; windows_per_s: N / seconds.
    """
    windows: dict[str, int]
    shape: list[int]
    spec: dict
    megabytes: float
    seconds_decode: float
    seconds_mel: float
    seconds: float
    windows_per_s: float


def select_windows(windows: pd.DataFrame, test_shifts: list[float]) -> pd.DataFrame:
    """The feature-store rows the SED needs: focal, training soundscapes, test at ``test_shifts``."""
    shift = windows["shift_s"].astype(float)
    test = windows["source"] == "test"
    keep = ~test | shift.apply(lambda s: any(np.isclose(s, t) for t in test_shifts))
    missing = [t for t in test_shifts if not np.isclose(shift[test], t).any()]
    if test.any() and missing:
        raise SpectrogramStageError(f"spectrogram.test_shifts {missing}: not extracted "
                                    f"({FEATURES}/windows.csv has test shifts {sorted(set(shift[test]))})")
    return windows[keep].reset_index(drop=True)


def audio_paths(index) -> dict[str, str]:
    recordings = read_index_table(index, "recordings")
    soundscapes = read_index_table(index, "soundscapes")
    return {**dict(zip(recordings["recording_id"], recordings["path"])),
            **dict(zip(soundscapes["soundscape_id"], soundscapes["path"]))}


def run(params: dict, key: str | None = None) -> SpectrogramResult:
    started = time.perf_counter()
    p = SpectrogramParams.model_validate(params["spectrogram"])  # typed once (birdclef_eos/audio/config.py)
    spec = MelSpec(sample_rate=params["dataset"]["sample_rate"], n_fft=p.n_fft, hop=p.hop,
                   n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)
    windows, _, _ = features.load(FEATURES, names=[])
    rows = select_windows(windows, p.test_shifts)
    paths = audio_paths(INDEX)
    unknown = sorted(set(rows["file_id"]) - set(paths))
    if unknown:
        raise SpectrogramStageError(f"{FEATURES}/windows.csv: file_id {unknown[:3]} not in {INDEX}/recordings.csv "
                                    "or soundscapes.csv (re-run extract)")
    samples = int(round(5.0 * spec.sample_rate))
    mels = np.empty((len(rows), spec.n_mels, spec.frames(samples)), dtype=np.float16)
    decode_s = mel_s = 0.0
    groups = list(rows.groupby("file_id", sort=False).groups.items())
    batch, batch_rows = [], []

    def flush():
        nonlocal mel_s
        if batch:
            t = time.perf_counter()
            mels[batch_rows] = log_mel(np.concatenate(batch), spec).astype(np.float16)
            mel_s += time.perf_counter() - t
            batch.clear()
            batch_rows.clear()

    with tqdm(total=len(rows), desc="spectrogram", unit="win", mininterval=2.0) as bar:
        for file_id, idx in groups:
            idx = list(idx)
            t = time.perf_counter()
            batch.append(read_file_windows(paths[file_id], rows.loc[idx, "start_s"].astype(float).tolist(),
                                           spec.sample_rate))
            decode_s += time.perf_counter() - t
            batch_rows.extend(idx)
            bar.update(len(idx))
            if len(batch_rows) >= p.batch_windows:
                flush()
        flush()
    spectrograms.save(SPECTROGRAMS, rows, mels, spec)
    seconds = time.perf_counter() - started
    counts = {s: int(n) for s, n in rows["split"].value_counts().sort_index().items()}
    return SpectrogramResult(windows=counts, shape=list(mels.shape), spec=spec.as_dict(),
                             megabytes=round(mels.nbytes / 1e6, 1), seconds_decode=decode_s,
                             seconds_mel=mel_s, seconds=seconds, windows_per_s=len(rows) / max(seconds, 1e-9))
