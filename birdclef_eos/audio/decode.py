"""Audio: decode, mix down, resample, cut windows, write.

Reads .ogg, .flac and .wav alike through soundfile (no ffmpeg). Writes FLAC, whose bytes are
identical for identical samples (OGG gets a random stream serial on every write).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

WRITE_BLOCK = 1 << 20  # soundfile segfaults on one write of 2**21 frames or more


class AudioError(RuntimeError):
    pass


def audio_info(path: str | Path) -> tuple[int, int]:
    """(frames, sample_rate) of an audio file, with a clear error if it cannot be read."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio file ({exc})") from exc
    if info.frames <= 0:
        raise AudioError(f"{path}: empty audio file (0 frames)")
    return info.frames, info.samplerate


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    if sr_from == sr_to:
        return x.astype(np.float32, copy=False)
    ratio = Fraction(sr_to, sr_from)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def read_audio(path: str | Path, sample_rate: int | None = None,
               start_s: float = 0.0, duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples of ``path`` from ``start_s`` for ``duration_s`` (all if None),
    resampled to ``sample_rate`` when given. Returns (samples, rate)."""
    frames, sr = audio_info(path)
    start = max(0, int(round(start_s * sr)))
    stop = frames if duration_s is None else min(frames, start + int(round(duration_s * sr)))
    try:
        x, sr = sf.read(str(path), start=start, stop=max(start, stop), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    x = x.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if sample_rate is not None and sample_rate != sr:
        x, sr = resample(x, sr, sample_rate), sample_rate
    return x.astype(np.float32, copy=False), sr


def load_window(path: str | Path, start_s: float, duration_s: float, sample_rate: int) -> np.ndarray:
    """Exactly ``duration_s * sample_rate`` samples from ``start_s``; zero-padded past either end."""
    n = int(round(duration_s * sample_rate))
    offset = 0
    if start_s < 0:  # a shifted window before the file start: pad on the left
        offset = min(n, int(round(-start_s * sample_rate)))
        duration_s, start_s = duration_s + start_s, 0.0
    x, _ = read_audio(path, sample_rate, start_s, max(duration_s, 0.0))
    out = np.zeros(n, dtype=np.float32)
    x = x[: n - offset]
    out[offset:offset + len(x)] = x
    return out


def write_flac(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit FLAC in blocks (byte-identical for identical samples)."""
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    with sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1,
                      format="FLAC", subtype="PCM_16") as f:
        for i in range(0, len(samples), WRITE_BLOCK):
            f.write(samples[i:i + WRITE_BLOCK])


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular mel filters (HTK mel scale), shape [n_mels, n_fft // 2 + 1]."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))).astype(np.float32)


def log_mel(x: np.ndarray, sample_rate: int, n_mels: int = 64, n_fft: int = 1024, hop: int = 320,
            fmin: float = 50.0, fmax: float = 15000.0) -> np.ndarray:
    """Log-mel spectrogram [n_mels, frames] (natural log of power + 1e-6), Hann window."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.log(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax) @ power.T + 1e-6).astype(np.float32)
