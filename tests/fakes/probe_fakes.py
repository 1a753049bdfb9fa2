"""Tiny stand-ins for the probe and extract tests: a fake backbone runner and a hand-made index.

The fake runner's block_02 is the band energy of the window (it separates the tone-coded
species), block_00 is noise derived from the samples, block_01 mixes the two.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.backbone.runner import BackboneOutputs

from birdclef_eos.audio.decode import write_flac

SR = 32000
BLOCKS = [{"index": i, "name": f"block_{i:02d}", "tensor": f"t{i}", "stage": 1 + i // 2,
           "channels": 4, "spatial": [1, 1]} for i in range(3)]


class FakeBackbone:
    def __init__(self, n_logits: int = 5):
        self.n_logits = n_logits
        self.calls = 0

    def features(self, windows: np.ndarray) -> BackboneOutputs:
        windows = np.asarray(windows, dtype=np.float32)
        assert windows.ndim == 2 and windows.shape[1] == 5 * SR
        self.calls += 1
        spectrum = np.abs(np.fft.rfft(windows[:, :: 8], axis=1))  # 0-2 kHz in four 500-Hz bands
        bands = np.stack([b.mean(axis=1) for b in np.array_split(spectrum, 4, axis=1)], axis=1)
        bands = np.log1p(bands)
        seeds = np.abs(windows[:, :100]).sum(axis=1) * 1e6
        noise = np.stack([np.random.default_rng(int(s) % 2**32).normal(size=4) for s in seeds])
        return BackboneOutputs(
            blocks={"block_00": noise.astype(np.float32), "block_01": (0.2 * bands + noise).astype(np.float32),
                    "block_02": bands.astype(np.float32)},
            embedding=bands[:, :4].astype(np.float32),
            logits=np.tile(bands[:, :1], (1, self.n_logits)).astype(np.float32))


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)


def make_index(root: Path, n_species: int = 4, recordings: int = 3, soundscapes: int = 2,
               tests: int = 1, seconds: float = 7.0) -> None:
    """Write models/blocks.json, data/index/*.csv and the audio they point to under ``root``."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    recs = []
    for s in range(n_species):
        label = f"sp{s}"
        for r in range(recordings):
            path = audio / f"{label}_{r}.flac"
            write_flac(path, tone(250 + 500 * s, seconds, seed=10 * s + r), SR)
            recs.append({"recording_id": f"{label}/XC{r}", "path": str(path), "primary_label": label,
                         "secondary_labels": "", "rating": 5, "latitude": 0, "longitude": 0,
                         "duration_s": seconds, "sample_rate": SR})
    scapes, chunks = [], []
    for i in range(soundscapes + tests):
        split = "test" if i >= soundscapes else ("labelled" if i % 2 == 0 else "unlabelled")
        sid = f"SC_{i}"
        path = audio / f"{sid}.flac"
        write_flac(path, tone(500, 15.0, seed=100 + i), SR)
        scapes.append({"soundscape_id": sid, "path": str(path), "split": split, "site": "S01",
                       "date": "20240520", "hour": 6, "duration_s": 15.0, "sample_rate": SR,
                       "board": "public" if split == "test" else ""})
        for c in range(3):
            chunks.append({"row_id": f"{sid}_{5 * (c + 1)}", "soundscape_id": sid, "chunk": c,
                           "start_s": 5 * c, "end_s": 5 * (c + 1), "split": split, "site": "S01",
                           "hour": 6, "labels": "sp0;sp1" if split == "labelled" else ""})
    index = root / "data" / "index"
    index.mkdir(parents=True)
    pd.DataFrame(recs).to_csv(index / "recordings.csv", index=False)
    pd.DataFrame(scapes).to_csv(index / "soundscapes.csv", index=False)
    pd.DataFrame(chunks).to_csv(index / "chunks.csv", index=False)
    (root / "models").mkdir()
    (root / "models" / "blocks.json").write_text(json.dumps(
        {"blocks": BLOCKS, "logits_output": "logits", "embedding_output": "embedding"}))
