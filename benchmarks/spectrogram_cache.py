"""Spectrograms: read from the cache (data/spectrograms/mels.npy, float16, memory-mapped) or
compute on the fly (decode the window's audio + log_mel), side by side on the same random batches.

Measured to choose between caching and computing on the fly. Interleaved rounds on the same 64-window batches:
  cache  - fancy-index a batch of mels.npy rows (float16) and cast to float32;
  fly    - read each window's audio (read_file_windows) and compute log_mel at the cached MelSpec.
Also prints the cache's size on disk and what it would be at the public chain's 256 x 313 float32.
Writes benchmarks/results/spectrogram_cache.json.

Run: nice .venv/bin/python benchmarks/spectrogram_cache.py   (after `dvc repro -s spectrogram`)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from birdclef_eos.audio.spectrogram import log_mel  # noqa: E402
from birdclef_eos.audio.windows import read_file_windows  # noqa: E402
from birdclef_eos.data import spectrograms  # noqa: E402
from birdclef_eos.io.files import write_json  # noqa: E402
from stages.paths import BENCHMARK_RESULTS, INDEX, SPECTROGRAMS  # noqa: E402
from stages.spectrogram import audio_paths  # noqa: E402

BATCH, ROUNDS = 64, 5


def main() -> None:
    store = spectrograms.load(SPECTROGRAMS)
    paths = audio_paths(INDEX)
    rng = np.random.default_rng(0)
    cache_s, fly_s = [], []
    for r in range(ROUNDS):
        idx = np.sort(rng.choice(len(store.windows), BATCH, replace=False))
        rows = store.windows.iloc[idx]

        def cache():
            return np.asarray(store.mels[idx], dtype=np.float32)

        def fly():
            audio = np.concatenate([read_file_windows(paths[f], [float(s)], store.spec.sample_rate)
                                    for f, s in zip(rows["file_id"], rows["start_s"])])
            return log_mel(audio, store.spec)

        for name, fn in ((("cache", cache), ("fly", fly)) if r % 2 == 0 else (("fly", fly), ("cache", cache))):
            t = time.perf_counter()
            fn()
            (cache_s if name == "cache" else fly_s).append(time.perf_counter() - t)
    n, m, f = store.mels.shape
    result = {"batch": BATCH, "rounds": ROUNDS, "shape": [n, m, f],
              "cache_windows_per_s": BATCH * ROUNDS / sum(cache_s),
              "fly_windows_per_s": BATCH * ROUNDS / sum(fly_s),
              "ratio_fly_over_cache": sum(fly_s) / sum(cache_s),
              "cache_megabytes": store.mels.nbytes / 1e6,
              "chain_size_float32_megabytes": n * 256 * 313 * 4 / 1e6}
    print(json.dumps(result, indent=2))
    write_json(BENCHMARK_RESULTS / "spectrogram_cache.json", result)


if __name__ == "__main__":
    main()
