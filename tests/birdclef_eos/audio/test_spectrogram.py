import numpy as np
import pytest

from birdclef_eos.audio.spectrogram import MelSpec, SpectrogramError, log_mel

SPEC = MelSpec(sample_rate=16000, n_fft=512, hop=256, n_mels=32, fmin=20.0, fmax=8000.0)


def test_shape_dtype_and_frames():
    x = np.random.default_rng(0).standard_normal((3, 16000)).astype(np.float32)
    m = log_mel(x, SPEC)
    assert m.shape == (3, 32, 1 + 16000 // 256) and m.dtype == np.float32


def test_standardised_per_clip_and_deterministic():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8000)).astype(np.float32) * np.array([[1.0], [100.0]], dtype=np.float32)
    m = log_mel(x, SPEC)
    assert np.allclose(m.mean(axis=(1, 2)), 0, atol=1e-4) and np.allclose(m.std(axis=(1, 2)), 1, atol=1e-3)
    assert log_mel(x, SPEC).tobytes() == m.tobytes()
    assert np.allclose(log_mel(x, SPEC, block=1), m, atol=1e-5)  # block size: memory and speed only


def test_a_tone_lands_in_its_mel_band():
    t = np.arange(16000) / 16000
    m = log_mel(np.sin(2 * np.pi * 1000 * t)[None].astype(np.float32), SPEC)[0]
    assert 5 < int(m.mean(axis=1).argmax()) < 20  # a mid band, neither edge


def test_silence_stays_finite():
    assert np.all(log_mel(np.zeros((1, 4000), np.float32), SPEC) == 0)


def test_bad_input_is_named():
    with pytest.raises(SpectrogramError, match=r"row 1 has a non-finite"):
        log_mel(np.array([[0.0] * 600, [np.nan] * 600], np.float32), SPEC)
    with pytest.raises(SpectrogramError, match=r"\[n, samples\]"):
        log_mel(np.zeros(600, np.float32), SPEC)
    with pytest.raises(SpectrogramError, match="fmax"):
        MelSpec(sample_rate=16000, fmax=9000.0)
