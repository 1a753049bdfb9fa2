"""A tiny synthetic feature store (the `extract` contract) for tests and benchmarks of the heads.

Each species has one random mean vector per block; a row's block features are the sum of the
means of its labels plus Gaussian noise, so a head can learn something and the AUC means something.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from birdclef_eos.data.features import WINDOW_COLUMNS


def species_names(n_species: int) -> list[str]:
    return [f"sp{i:03d}" for i in range(n_species)]


def toy_windows(n_species: int, n_recordings: int, windows_per_recording: int, n_soundscapes: int,
                rng: np.random.Generator) -> pd.DataFrame:
    labels = species_names(n_species)
    rows = []
    for r in range(n_recordings):
        species = labels[r % n_species]
        secondary = labels[(r * 7 + 3) % n_species] if r % 4 == 0 else ""
        for w in range(windows_per_recording):
            rows.append({"source": "focal", "file_id": f"{species}/XC{r:05d}", "start_s": 5.0 * w,
                         "shift_s": 0.0, "row_id": "", "chunk": -1, "split": "focal",
                         "primary_label": species, "labels": species, "secondary_labels": secondary,
                         "site": "", "hour": -1})
    for s in range(n_soundscapes):
        split = "labelled" if s % 4 else "unlabelled"
        stem = f"BC2026_Train_{s:04d}_S{s % 3:02d}_20240520_063000"
        for chunk in range(12):
            chosen = rng.choice(n_species, size=rng.integers(0, 3), replace=False) if split == "labelled" else []
            for shift in (-1.0, 0.0, 1.0):
                rows.append({"source": "soundscape", "file_id": stem, "start_s": 5.0 * chunk + shift,
                             "shift_s": shift, "row_id": f"{stem}_{5 * (chunk + 1)}", "chunk": chunk,
                             "split": split, "primary_label": "",
                             "labels": ";".join(labels[i] for i in sorted(chosen)),
                             "secondary_labels": "", "site": f"S{s % 3:02d}", "hour": 6})
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def toy_block_features(windows: pd.DataFrame, labels: list[str], channels: list[int], noise: float,
                       rng: np.random.Generator, informative: int | None = None,
                       embedding_dim: int = 10) -> dict[str, np.ndarray]:
    """Block arrays (and the final ``embedding``); with ``informative`` = b, only block b carries the
    labels (the others are noise), so a probe should rank it first."""
    index = {label: i for i, label in enumerate(labels)}
    multi_hot = np.zeros((len(windows), len(labels)), dtype=np.float32)
    for row, cell in enumerate(windows["labels"]):
        for label in filter(None, cell.split(";")):
            multi_hot[row, index[label]] = 1.0
    arrays = {}
    for b, c in enumerate(channels):
        means = rng.normal(size=(len(labels), c)).astype(np.float32)
        signal = 1.0 if informative is None or informative == b else 0.0
        arrays[f"block_{b:02d}"] = (signal * multi_hot @ means
                                    + noise * rng.normal(size=(len(windows), c))).astype(np.float32)
    means = rng.normal(size=(len(labels), embedding_dim)).astype(np.float32)
    arrays["embedding"] = (multi_hot @ means + noise * rng.normal(size=(len(windows), embedding_dim))).astype(np.float32)
    return arrays


def toy_store(n_species: int = 6, n_recordings: int = 60, windows_per_recording: int = 3,
              n_soundscapes: int = 12, channels: tuple[int, ...] = (8, 12, 12), noise: float = 2.0,
              seed: int = 0, informative: int | None = None):
    """(windows, arrays, meta, species table) in the shapes features.save and data/index expect."""
    rng = np.random.default_rng(seed)
    labels = species_names(n_species)
    windows = toy_windows(n_species, n_recordings, windows_per_recording, n_soundscapes, rng)
    arrays = toy_block_features(windows, labels, list(channels), noise, rng, informative)
    meta = {"blocks": list(range(len(channels))), "channels": list(channels), "bad_audio": []}
    species = pd.DataFrame({"label_idx": range(n_species), "primary_label": labels})
    return windows, arrays, meta, species


def train_config(**changes):
    """A head's TrainConfig for the toy tests: TrainConfig has no defaults of its own (params.yaml holds
    the pipeline's), so the tests' own values are written here, once, and a test changes what it needs."""
    from birdclef_eos.heads import training
    knobs = {"epochs": 50, "patience": 5, "min_delta": 0.0, "batch_size": 256, "lr": 1e-3, "weight_decay": 0.01,
             "mixup_alpha": 0.2, "mix_lr_scale": 10.0}
    return training.TrainConfig(**{**knobs, **changes})
