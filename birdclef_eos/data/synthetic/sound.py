"""Sound of the synthetic set: one call rendition, its propagation, backgrounds, mixing.

Every rendition jitters the species' call; calls are filtered and reverberated by distance and
mixed over backgrounds (pink/brown noise, wind, rain, insect chorus).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import butter, fftconvolve, oaconvolve, sosfilt

def render_call(t: dict, rng: np.random.Generator, sr: int, jitter: float) -> np.ndarray:
    """One rendition of a call template, with per-rendition jitter; peak about 1."""
    fs = math.exp(rng.normal(0, jitter))
    n_notes = max(1, t["n_notes"] + int(rng.integers(-1, 2)))
    notes = []
    for _ in range(n_notes):
        dur = max(0.03, t["note_s"] * math.exp(rng.normal(0, 2 * jitter)))
        n = int(dur * sr)
        x = np.arange(n) / sr
        f0 = t["f_start"] * fs * math.exp(rng.normal(0, jitter / 2))
        f1 = t["f_end"] * fs * math.exp(rng.normal(0, jitter / 2))
        freq = f0 * (f1 / f0) ** (x / dur)
        if t["vib_depth"] > 0:
            freq = freq * (1 + t["vib_depth"] * np.sin(2 * np.pi * t["vib_rate"] * x + rng.uniform(0, 6.3)))
        phase = 2 * np.pi * np.cumsum(freq) / sr
        sig = np.zeros(n)
        for h in range(1, t["n_harm"] + 1):
            if h * max(f0, f1) * 1.1 < sr / 2 - 500:
                sig += t["harm_decay"] ** (h - 1) * np.sin(h * phase)
        env = np.minimum(1.0, np.minimum(x, dur - x) / max(0.005, 0.15 * dur))
        if t["am_depth"] > 0:
            am = 0.5 + 0.5 * np.cos(2 * np.pi * t["am_rate"] * math.exp(rng.normal(0, jitter)) * x)
            env = env * (1 - t["am_depth"] + t["am_depth"] * am ** t["am_sharp"])
        notes.append(sig * env)
        notes.append(np.zeros(int(max(0.01, t["gap_s"] * math.exp(rng.normal(0, 2 * jitter))) * sr)))
    call = np.concatenate(notes[:-1])
    return (call / (np.abs(call).max() + 1e-9)).astype(np.float32)


@lru_cache(maxsize=4096)
def _lowpass(cutoff_hz: int, sr: int) -> np.ndarray:
    return butter(2, cutoff_hz, fs=sr, output="sos")


def propagate(call: np.ndarray, distance_m: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Distance: 1/d loss, air absorption as a low-pass, reverb (longer tail further away)."""
    cutoff = min(0.45 * sr, 16000 / (1 + 0.08 * distance_m))
    out = sosfilt(_lowpass(int(round(cutoff, -1)), sr), call)
    tau = rng.uniform(0.03, 0.08) * (1 + distance_m / 20)
    ir_t = np.arange(int(3 * tau * sr)) / sr
    ir = rng.standard_normal(len(ir_t)) * np.exp(-ir_t / tau)
    ir[0] = 0
    wet = fftconvolve(out, ir / (np.sqrt(np.sum(ir ** 2)) + 1e-9))
    mix = min(0.8, 0.15 + distance_m / 60)
    out = np.concatenate([out, np.zeros(len(ir) - 1)]) * (1 - mix) + wet * mix
    return (out / max(1.0, distance_m)).astype(np.float32)


def _shaped_noise(n: int, rng: np.random.Generator, sr: int, power: np.ndarray) -> np.ndarray:
    """Gaussian noise with the power spectrum ``power`` (one value per rfft bin); unit RMS."""
    spec = sp_fft.rfft(rng.standard_normal(n, dtype=np.float32)) * np.sqrt(power).astype(np.float32)
    x = sp_fft.irfft(spec, n)
    return x / (x.std() + 1e-12)


def _unit_power(p: np.ndarray) -> np.ndarray:
    return p / p.sum()


def _slow_envelope(n: int, rng: np.random.Generator, sr: int, rate_hz: float) -> np.ndarray:
    knots = rng.standard_normal(int(n / sr * rate_hz) + 3)
    x = np.arange(n, dtype=np.float32) * np.float32(rate_hz / sr)
    return np.exp(0.6 * np.interp(x, np.arange(len(knots)), knots)).astype(np.float32)


def background(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """A random mix of pink and brown noise, wind, rain and an insect chorus; unit RMS.

    The stationary parts are shaped in one FFT; wind gusts, rain drops and the pulsing
    insect chorus are added in the time domain."""
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    power = 0.09 * _unit_power(1 / f)                                   # pink: always present
    if rng.random() < 0.6:                                              # brown
        power += rng.uniform(0.2, 1.0) ** 2 * _unit_power(1 / f ** 2)
    rain = rng.random() < 0.25
    if rain:                                                            # rain hiss
        power += rng.uniform(0.1, 0.5) ** 2 * _unit_power(1 / (1 + (2500 / f) ** 4))
    out = _shaped_noise(n, rng, sr, power)
    if rng.random() < 0.4:                                              # wind: low rumble in gusts
        wind = _shaped_noise(n, rng, sr, 1 / (1 + (f / rng.uniform(150, 600)) ** 4))
        out += rng.uniform(0.5, 2.0) * wind * _slow_envelope(n, rng, sr, 0.5)
    if rain:                                                            # rain drops
        k = int(rng.uniform(5, 60) * n / sr)
        drops = np.zeros(n, dtype=np.float32)
        drops[rng.integers(0, n, k)] = rng.exponential(1.0, k)
        m = int(0.004 * sr)
        drop_ir = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.001 * sr))
        out += rng.uniform(1.0, 3.0) * oaconvolve(drops, drop_ir.astype(np.float32))[:n]
    if rng.random() < 0.5:                                              # insect chorus: AM tones,
        x = np.arange(sr, dtype=np.float32) / sr                         # 1-s periodic, then tiled
        loop = np.zeros(sr, dtype=np.float32)
        for _ in range(int(rng.integers(2, 7))):
            am = (0.5 + 0.5 * np.sin(2 * np.pi * int(rng.integers(10, 80)) * x)) ** 2
            loop += rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * int(rng.integers(3000, 11000)) * x
                                                    + rng.uniform(0, 6.3)) * am
        out += np.tile(loop, n // sr + 1)[:n]
    return (out / (out.std() + 1e-12)).astype(np.float32)


def place(mix: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` into ``mix`` at sample ``start`` (clipped at both ends)."""
    lo, hi = max(0, start), min(len(mix), start + len(sound))
    if hi > lo:
        mix[lo:hi] += sound[lo - start:hi - start]


def peak_normalise(mix: np.ndarray, peak: float = 0.7) -> np.ndarray:
    return (mix * (peak / (np.abs(mix).max() + 1e-9))).astype(np.float32)
