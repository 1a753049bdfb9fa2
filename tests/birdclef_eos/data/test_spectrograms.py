import numpy as np
import pandas as pd
import pytest

from birdclef_eos.audio.spectrogram import MelSpec
from birdclef_eos.data import spectrograms
from birdclef_eos.data.features import WINDOW_COLUMNS


def windows(n):
    return pd.DataFrame([{c: "" for c in WINDOW_COLUMNS} | {"file_id": f"f{i}", "chunk": i, "hour": -1,
                                                            "start_s": 0.0, "shift_s": 0.0} for i in range(n)])


def test_round_trip(tmp_path):
    spec = MelSpec(n_mels=4)
    mels = np.random.default_rng(0).standard_normal((3, 4, 7)).astype(np.float32)
    spectrograms.save(tmp_path / "s", windows(3), mels, spec)
    store = spectrograms.load(tmp_path / "s")
    assert store.spec == spec and store.mels.dtype == np.float16 and store.mels.shape == (3, 4, 7)
    assert isinstance(store.mels, np.memmap)
    assert list(store.windows["file_id"]) == ["f0", "f1", "f2"]
    assert np.allclose(store.mels, mels, atol=1e-2)


def test_bad_rows_are_named(tmp_path):
    mels = np.zeros((2, 4, 7), np.float32)
    mels[1, 0, 0] = np.inf
    with pytest.raises(spectrograms.SpectrogramStoreError, match=r"row 1 \(file f1\)"):
        spectrograms.save(tmp_path / "s", windows(2), mels, MelSpec(n_mels=4))
    with pytest.raises(spectrograms.SpectrogramStoreError, match="shape"):
        spectrograms.save(tmp_path / "s", windows(3), mels, MelSpec(n_mels=4))
    with pytest.raises(spectrograms.SpectrogramStoreError, match="run the spectrogram stage"):
        spectrograms.load(tmp_path / "missing")
