"""Log-mel spectrograms of 5-s windows, as the SED models read them.

`MelSpec` holds every setting; `log_mel(audio, spec)` turns float32 ``[n, samples]`` windows into
float32 ``[n, n_mels, frames]``: a centred (zero-padded by ``n_fft // 2``), Hann-windowed STFT,
power through the triangular HTK mel filters of `birdclef_eos.audio.decode.mel_filterbank`, natural
log of power + 1e-6, then standardised per clip (zero mean, unit standard deviation over the whole
clip; a silent clip stays all-zero). ``frames = 1 + samples // hop``. numpy only, float64 FFT cast
to float32, so the same audio gives the same bytes on every run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from birdclef_eos.audio.decode import mel_filterbank

LOG_EPS = 1e-6
STD_EPS = 1e-6


class SpectrogramError(ValueError):
    pass


@dataclass(frozen=True)
class MelSpec:
    """Log-mel settings (the public chain's SED: 32 kHz, n_fft 2048, hop 512, 256 bins, 20-16,000 Hz)."""
    sample_rate: int = 32000
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 256
    fmin: float = 20.0
    fmax: float = 16000.0

    def __post_init__(self):
        if self.n_fft < 2 or self.hop < 1 or self.n_mels < 1:
            raise SpectrogramError(f"MelSpec: n_fft, hop, n_mels must be positive ({self})")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise SpectrogramError(f"MelSpec: need 0 <= fmin < fmax <= sample_rate / 2 ({self})")

    def frames(self, samples: int) -> int:
        """Frames of a window of ``samples`` samples."""
        return 1 + samples // self.hop

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelSpec":
        return cls(**{k: d[k] for k in ("sample_rate", "n_fft", "hop", "n_mels", "fmin", "fmax")})


def _filters(spec: MelSpec) -> np.ndarray:
    return mel_filterbank(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)


def log_mel(audio: np.ndarray, spec: MelSpec, block: int = 64) -> np.ndarray:
    """float32 ``[n, n_mels, frames]`` log-mel of float32 ``[n, samples]`` windows, standardised per clip.

    ``block`` windows are transformed at once (memory and speed: another block may move the last bit of a
    value through the BLAS product, so the stage fixes it as a param)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise SpectrogramError(f"log_mel: audio must be [n, samples], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        row = int(np.argwhere(~np.isfinite(audio))[0][0])
        raise SpectrogramError(f"log_mel: audio row {row} has a non-finite sample")
    n, samples = audio.shape
    pad = spec.n_fft // 2
    frames = spec.frames(samples)
    window = np.hanning(spec.n_fft).astype(np.float32)
    filters_t = np.ascontiguousarray(_filters(spec).T)  # [bins, n_mels]
    out = np.empty((n, spec.n_mels, frames), dtype=np.float32)
    for i in range(0, n, block):
        x = np.pad(audio[i:i + block], ((0, 0), (pad, pad)))
        framed = np.lib.stride_tricks.sliding_window_view(x, spec.n_fft, axis=1)[:, ::spec.hop][:, :frames]
        power = np.abs(np.fft.rfft(framed * window, axis=-1)).astype(np.float32) ** 2  # [b, frames, bins]
        mel = np.log((power.reshape(-1, power.shape[-1]) @ filters_t).reshape(len(power), frames, -1)
                     + LOG_EPS).transpose(0, 2, 1).astype(np.float64)
        mean = mel.mean(axis=(1, 2), keepdims=True)
        std = mel.std(axis=(1, 2), keepdims=True)
        out[i:i + block] = np.where(std > STD_EPS, (mel - mean) / np.maximum(std, STD_EPS), 0.0)
    return out
