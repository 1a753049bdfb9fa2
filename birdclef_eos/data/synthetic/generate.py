"""The synthetic BirdCLEF 2026 data set: taxonomy, call templates, recordings, soundscapes.

Species sit in genera; each genus has a call template (FM sweep, trill, harmonic stack, vibrato
whistle, insect buzz, frog pulse train) and each species perturbs its genus template, so that
congeners are confusable. Every rendition jitters the species' call; calls are filtered and
reverberated by distance and mixed over backgrounds (pink/brown noise, wind, rain, insect chorus).

Determinism: every item (taxonomy, one recording, one soundscape) draws from its own
``numpy.random.Generator`` seeded by ``(seed, stream, index)``, so serial and parallel runs
write the same bytes. Audio is written as FLAC (byte-stable) by ``birdclef_eos.audio.decode.write_flac``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft as sp_fft
from scipy.signal import butter, fftconvolve, oaconvolve, sosfilt
from tqdm import tqdm

from birdclef_eos.audio.decode import write_flac

# random streams: one per kind of item, so adding soundscapes never changes recordings
TAXONOMY, RECORDING, SOUNDSCAPE, LAYOUT = 0, 1, 2, 3

CLASS_TEMPLATES = {
    "Aves": ["fm_sweep", "trill", "harmonic_stack", "vibrato_whistle"],
    "Amphibia": ["frog_pulse_train", "frog_pulse_train", "trill"],
    "Insecta": ["insect_buzz", "insect_buzz", "trill"],
}
COMMON_NOUNS = {
    "Aves": ["Antbird", "Tanager", "Flycatcher", "Wren", "Thornbird", "Seedeater", "Woodcreeper",
             "Tyrannulet", "Spinetail", "Parakeet", "Dove", "Cuckoo", "Nightjar", "Kingbird"],
    "Amphibia": ["Treefrog", "Toad", "Frog", "Leaf Frog", "Chorus Frog"],
    "Insecta": ["Katydid", "Cricket", "Cicada", "Bush Cricket"],
}
ADJECTIVES = ["Rufous", "Pale", "Spotted", "Lesser", "Greater", "Chaco", "Pantanal", "Olive",
              "Dusky", "Striped", "Golden", "Ashy", "Masked", "Little", "Plain", "Banded",
              "Scaled", "Crested", "Sooty", "Grey", "White-bellied", "Black-throated", "Marsh",
              "Forest", "Common", "Short-tailed", "Long-billed", "Yellow", "Ochre", "Chestnut"]
SYLLABLES = ["tha", "mno", "phi", "lus", "cra", "nio", "lep", "ido", "syn", "all", "axi", "pyr",
             "rho", "hyl", "odo", "bra", "chy", "sci", "nax", "pse", "udi", "bol", "mar", "tor"]
EPITHET_ENDS = ["ensis", "atus", "ata", "icus", "ipes", "us", "ii", "ura", "ops", "alis"]
GENUS_ENDS = ["us", "a", "ops", "ix", "ella", "oides", "ornis", "ila"]
SITE_HOURS = np.arange(24)


def rng_for(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, index])


# ----------------------------------------------------------------------------- taxonomy

def _latin(rng: np.random.Generator, ends: list[str], n_syl: int) -> str:
    return "".join(rng.choice(SYLLABLES, n_syl)) + str(rng.choice(ends))


def _genus_template(kind: str, cls: str, rng: np.random.Generator) -> dict:
    """Call parameters shared by a genus. Frequencies in Hz, durations in s, rates in Hz."""
    u = rng.uniform
    t = dict(kind=kind, f_start=0.0, f_end=0.0, note_s=0.2, n_notes=1, gap_s=0.1, vib_rate=0.0,
             vib_depth=0.0, am_rate=0.0, am_depth=0.0, am_sharp=1.0, n_harm=1, harm_decay=0.5)
    if kind == "fm_sweep":
        f = u(1500, 6000)
        t.update(f_start=f, f_end=f * u(0.45, 1.9), note_s=u(0.08, 0.35), n_notes=int(rng.integers(2, 6)),
                 gap_s=u(0.05, 0.25), n_harm=int(rng.integers(1, 3)), harm_decay=u(0.2, 0.5))
    elif kind == "trill":
        f = {"Aves": u(2500, 7000), "Amphibia": u(900, 2500), "Insecta": u(4500, 9000)}[cls]
        t.update(f_start=f * u(1.0, 1.15), f_end=f * u(0.85, 1.0), note_s=u(0.6, 1.6), n_notes=int(rng.integers(1, 3)),
                 gap_s=u(0.2, 0.5), am_rate=u(8, 28), am_depth=u(0.8, 1.0), am_sharp=u(1.5, 4),
                 n_harm=int(rng.integers(1, 3)), harm_decay=u(0.2, 0.4))
    elif kind == "harmonic_stack":
        f = u(500, 1600)
        t.update(f_start=f, f_end=f * u(0.85, 1.2), note_s=u(0.15, 0.5), n_notes=int(rng.integers(1, 5)),
                 gap_s=u(0.1, 0.3), n_harm=int(rng.integers(4, 9)), harm_decay=u(0.6, 0.9))
    elif kind == "vibrato_whistle":
        f = u(1800, 5000)
        t.update(f_start=f, f_end=f * u(0.8, 1.25), note_s=u(0.4, 1.2), n_notes=int(rng.integers(1, 4)),
                 gap_s=u(0.15, 0.4), vib_rate=u(4, 30), vib_depth=u(0.02, 0.08), n_harm=1)
    elif kind == "insect_buzz":
        f = u(3500, 10000)
        t.update(f_start=f, f_end=f * u(0.97, 1.03), note_s=u(0.8, 2.5), n_notes=int(rng.integers(1, 3)),
                 gap_s=u(0.2, 0.8), am_rate=u(30, 160), am_depth=u(0.6, 1.0), am_sharp=u(1, 3),
                 n_harm=int(rng.integers(1, 4)), harm_decay=u(0.3, 0.7))
    elif kind == "frog_pulse_train":
        f = u(300, 1800)
        t.update(f_start=f, f_end=f * u(0.92, 1.08), note_s=u(0.2, 1.0), n_notes=int(rng.integers(1, 5)),
                 gap_s=u(0.15, 0.6), am_rate=u(5, 45), am_depth=1.0, am_sharp=u(2, 6),
                 n_harm=int(rng.integers(2, 6)), harm_decay=u(0.4, 0.8))
    return t


def _species_template(genus_t: dict, rng: np.random.Generator, spread: float) -> dict:
    """A species: its genus template perturbed by ``spread`` (log-normal, relative)."""
    s = dict(genus_t)
    shift = math.exp(rng.normal(0, spread))
    s["f_start"] *= shift * math.exp(rng.normal(0, spread / 2))
    s["f_end"] *= shift * math.exp(rng.normal(0, spread / 2))
    for k in ("note_s", "gap_s", "vib_rate", "am_rate"):
        s[k] *= math.exp(rng.normal(0, 1.5 * spread))
    s["vib_depth"] *= math.exp(rng.normal(0, spread))
    s["harm_decay"] = float(np.clip(s["harm_decay"] + rng.normal(0, spread), 0.1, 0.95))
    s["n_harm"] = max(1, s["n_harm"] + int(rng.integers(-1, 2)))
    s["n_notes"] = max(1, s["n_notes"] + int(rng.integers(-1, 2)))
    return s


def _ebird_code(common: str, taken: set[str]) -> str:
    words = [w for w in common.replace("-", " ").lower().split() if w.isalpha()]
    stem = (words[0][:3] + "".join(w[:3] for w in words[1:]))[:6] if len(words) > 1 else words[0][:6]
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def make_taxonomy(seed: int, n_genera: int, n_species: int, class_shares: dict[str, float],
                  species_spread: float) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(taxonomy table in the competition's columns, sorted by label; {label: call template})."""
    if n_species < n_genera:
        raise ValueError(f"dataset size: species ({n_species}) must be >= genera ({n_genera})")
    rng = rng_for(seed, TAXONOMY)
    classes = list(class_shares)
    counts = np.round(np.array([class_shares[c] for c in classes]) * n_genera).astype(int)
    if n_genera >= len(classes):  # every class present, even in the smoke size
        counts = np.maximum(counts, 1)
    counts[int(np.argmax(counts))] += n_genera - counts.sum()
    genus_class = [c for c, k in zip(classes, counts) for _ in range(k)]
    sizes = np.ones(n_genera, dtype=int)  # every genus has one member, the rest spread unevenly
    weights = rng.dirichlet(np.full(n_genera, 0.8))
    np.add.at(sizes, rng.choice(n_genera, n_species - n_genera, p=weights), 1)
    rows, templates, taken, genera, inat, binomials = [], {}, set(), set(), set(), {}
    sonotype = 0
    for g, (cls, size) in enumerate(zip(genus_class, sizes)):
        while (genus := _latin(rng, GENUS_ENDS, 2).capitalize()) in genera:
            pass
        genera.add(genus)
        noun = str(rng.choice(COMMON_NOUNS[cls]))
        genus_t = _genus_template(str(rng.choice(CLASS_TEMPLATES[cls])), cls, rng)
        adjectives = rng.choice(ADJECTIVES, size, replace=False)
        for adj in adjectives:
            while (taxon := int(rng.integers(100_000, 1_500_000))) in inat:
                pass
            inat.add(taxon)
            while (epithet := _latin(rng, EPITHET_ENDS, 1)) in binomials.get(genus, set()):
                pass
            binomials.setdefault(genus, set()).add(epithet)
            common = f"{adj} {genus} {noun}" if cls != "Aves" else f"{adj} {noun}"
            if cls == "Aves":
                label = _ebird_code(f"{adj} {genus} {noun}", taken)
            elif cls == "Insecta" and g % 2 == 0:  # sonotypes, as in the competition
                sonotype += 1
                label = f"47158son{sonotype:02d}"
            else:
                label = str(taxon)
            taken.add(label)
            rows.append(dict(primary_label=label, inat_taxon_id=taxon,
                             scientific_name=f"{genus} {epithet}", common_name=common, class_name=cls))
            templates[label] = _species_template(genus_t, rng, species_spread)
    taxonomy = pd.DataFrame(rows).sort_values("primary_label", kind="stable").reset_index(drop=True)
    return taxonomy, templates


# ----------------------------------------------------------------------------- sound

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


def normalise(mix: np.ndarray, peak: float = 0.7) -> np.ndarray:
    return (mix * (peak / (np.abs(mix).max() + 1e-9))).astype(np.float32)


# ----------------------------------------------------------------------------- labels

def chunk_labels(events: list[tuple[str, float, float]], duration_s: float, chunk_s: float,
                 min_overlap_s: float) -> list[list[str]]:
    """Labels per chunk: a call (label, start_s, end_s) labels every chunk it overlaps by
    more than ``min_overlap_s``; a call across a boundary therefore labels both chunks."""
    n = int(round(duration_s / chunk_s))
    chunks: list[set[str]] = [set() for _ in range(n)]
    for label, t0, t1 in events:
        for c in range(n):
            if min(t1, (c + 1) * chunk_s) - max(t0, c * chunk_s) > min_overlap_s:
                chunks[c].add(label)
    return [sorted(c) for c in chunks]


def hhmmss(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ----------------------------------------------------------------------------- the world

@dataclass
class World:
    """Everything the per-item workers need; small and picklable."""
    seed: int
    sr: int
    cfg: dict
    templates: dict[str, dict]
    labels: list[str]
    classes: dict[str, str]
    site_weight: dict[str, np.ndarray] = field(default_factory=dict)  # label -> weight per site
    hour_weight: dict[str, np.ndarray] = field(default_factory=dict)  # label -> weight per hour
    abundance: dict[str, float] = field(default_factory=dict)


def _hour_profile(cls: str, rng: np.random.Generator) -> np.ndarray:
    """Calling activity over 24 h: birds at dawn/dusk, frogs at night, insects day or night."""
    peaks = {"Aves": [rng.uniform(5, 8), rng.uniform(16, 19)],
             "Amphibia": [rng.uniform(19, 24), rng.uniform(0, 3)],
             "Insecta": [rng.uniform(0, 24)]}[cls]
    w = np.zeros(24)
    for p in peaks:
        d = np.minimum(np.abs(SITE_HOURS - p), 24 - np.abs(SITE_HOURS - p))
        w += np.exp(-0.5 * (d / rng.uniform(1.5, 3.5)) ** 2)
    return 0.05 + w / w.max()


def make_world(seed: int, sr: int, cfg: dict, taxonomy: pd.DataFrame, templates: dict) -> World:
    rng = rng_for(seed, LAYOUT)
    world = World(seed, sr, cfg, templates, list(taxonomy.primary_label),
                  dict(zip(taxonomy.primary_label, taxonomy.class_name)))
    for label in world.labels:
        present = rng.random(cfg["sites"]) < cfg["site_presence"]
        if not present.any():
            present[rng.integers(cfg["sites"])] = True
        world.site_weight[label] = present * rng.lognormal(0, 0.7, cfg["sites"])
        world.hour_weight[label] = _hour_profile(world.classes[label], rng)
        world.abundance[label] = float(rng.lognormal(0, 1.0))
    return world


def recording_plan(world: World) -> pd.DataFrame:
    """One row per focal recording: label, index, duration; long-tailed counts per species."""
    rng = rng_for(world.seed, LAYOUT, 1)
    cfg = world.cfg
    order = rng.permutation(world.labels)
    head = cfg["head_species"]
    counts = list(np.round(np.geomspace(*cfg["head_recordings"][::-1], head)).astype(int)) + \
        list(np.round(np.geomspace(*cfg["tail_recordings"][::-1], max(1, len(order) - head))).astype(int))
    rows, n = [], 0
    for label, count in zip(order, counts):
        for _ in range(count):
            n += 1
            rows.append(dict(primary_label=str(label), index=n, recording_id=f"XC{100000 + n * 7:06d}",
                             duration_s=float(round(rng.uniform(*cfg["recording_s"]), 1))))
    return pd.DataFrame(rows).sort_values(["primary_label", "recording_id"]).reset_index(drop=True)


def soundscape_plan(world: World) -> pd.DataFrame:
    """One row per soundscape: split, number, site, date, time; hours biased to dawn and night."""
    rng = rng_for(world.seed, LAYOUT, 2)
    cfg = world.cfg
    hour_p = np.full(24, 1.0)
    hour_p[[5, 6, 7, 18, 19, 20, 21, 22]] = 3.0
    hour_p /= hour_p.sum()
    rows, n = [], 0
    for split, count in (("labelled", cfg["labelled"]), ("unlabelled", cfg["unlabelled"]), ("test", cfg["test"])):
        for i in range(count):
            n += 1
            site = int(rng.integers(cfg["sites"]))
            hour = int(rng.choice(24, p=hour_p))
            date = pd.Timestamp("2025-06-01") + pd.Timedelta(days=int(rng.integers(0, 150)))
            kind = "Test" if split == "test" else "Train"
            stem = (f"BC2026_{kind}_{(i + 1) if split == 'test' else n:04d}_S{site + 1:02d}_"
                    f"{date:%Y%m%d}_{hour:02d}{int(rng.integers(0, 6)) * 10:02d}00")
            rows.append(dict(index=n, split=split, stem=stem, site=site, hour=hour))
    return pd.DataFrame(rows)


def _near_calls(world: World, label: str, rng: np.random.Generator, mix: np.ndarray,
                t_from: float, distance: tuple[float, float], level: float) -> list[tuple[str, float, float]]:
    """Call bouts of ``label`` from ``t_from`` to the end of ``mix``; returns the placed calls."""
    sr, events, t = world.sr, [], t_from
    while t < len(mix) / sr:
        call = render_call(world.templates[label], rng, sr, world.cfg["rendition_jitter"])
        wet = propagate(call, rng.uniform(*distance), rng, sr) * level
        start = int(t * sr)
        place(mix, wet, start)
        events.append((label, t, t + len(call) / sr))
        t += len(call) / sr + rng.exponential(world.cfg["call_interval_s"])
    return events


def render_recording(world: World, row: dict, out_path: Path) -> dict:
    """A focal recording: the species calling near, at times a second species further off."""
    rng = rng_for(world.seed, RECORDING, int(row["index"]))
    sr = world.sr
    mix = background(int(row["duration_s"] * sr), rng, sr) * 0.02
    snr = 10 ** (rng.uniform(*world.cfg["focal_snr_db"]) / 20) * 0.02
    _near_calls(world, row["primary_label"], rng, mix, rng.uniform(0, 0.8), (1, 12), snr * 4)
    secondary = []
    if rng.random() < world.cfg["secondary_rate"]:
        other = str(rng.choice([lbl for lbl in world.labels if lbl != row["primary_label"]]))
        _near_calls(world, other, rng, mix, rng.uniform(0, row["duration_s"] / 2), (10, 40), snr * 4)
        secondary.append(other)
    write_flac(out_path, normalise(mix, rng.uniform(0.3, 0.9)), sr)
    rating = float(np.clip(np.round(2 * (2.5 + rng.normal(0, 1) - 1.0 * len(secondary))) / 2, 0.5, 5.0))
    return dict(secondary_labels=secondary, rating=rating)


def soundscape_events(world: World, site: int, hour: int, rng: np.random.Generator,
                      duration_s: float) -> list[tuple[str, float, float, float]]:
    """Which species call when and how far: (label, start_s, duration_hint, distance_m).
    The expected number of bouts follows abundance x site weight x hour activity."""
    cfg, plans = world.cfg, []
    for label in world.labels:
        rate = cfg["bouts_per_soundscape"] * world.abundance[label] * world.site_weight[label][site] \
            * world.hour_weight[label][hour] / len(world.labels) * 8
        for _ in range(rng.poisson(rate)):
            plans.append((label, float(rng.uniform(-2, duration_s - 1)),
                          float(rng.uniform(*cfg["bout_s"])), float(np.exp(rng.uniform(0, np.log(80))))))
    return plans


def render_soundscape(world: World, row: dict, out_path: Path) -> list[tuple[str, float, float]]:
    """A 60-s soundscape; returns the calls actually placed (label, start_s, end_s)."""
    rng = rng_for(world.seed, SOUNDSCAPE, int(row["index"]))
    sr, dur = world.sr, world.cfg["soundscape_s"]
    n = int(dur * sr)
    mix = background(n, rng, sr) * 0.02
    events = []
    for label, t0, bout_s, distance in soundscape_events(world, row["site"], row["hour"], rng, dur):
        t = t0
        while t < min(dur, t0 + bout_s):
            call = render_call(world.templates[label], rng, sr, world.cfg["rendition_jitter"])
            wet = propagate(call, distance * math.exp(rng.normal(0, 0.1)), rng, sr) * 0.3
            place(mix, wet, int(round(t * sr)))
            lo, hi = max(0.0, t), min(dur, t + len(call) / sr)
            if hi > lo:
                events.append((label, lo, hi))
            t += len(call) / sr + rng.exponential(world.cfg["call_interval_s"])
    write_flac(out_path, normalise(mix, rng.uniform(0.3, 0.9)), sr)
    return events


# ----------------------------------------------------------------------------- writing the layout

def _site_location(site: int, seed: int) -> tuple[float, float]:
    r = rng_for(seed, LAYOUT, 100 + site)
    return -16.5 - r.uniform(0, 3), -55.5 - r.uniform(0, 2.5)


def _recording_task(args):
    world, row, folder = args
    path = Path(folder) / "train_audio" / row["primary_label"] / f"{row['recording_id']}.flac"
    return render_recording(world, row, path)


def _soundscape_task(args):
    world, row, folder = args
    return render_soundscape(world, row, Path(folder) / f"{row['stem']}.flac")


def _run(tasks, fn, jobs: int, desc: str) -> list:
    if jobs <= 1:
        return [fn(t) for t in tqdm(tasks, desc=desc, unit="file")]
    with Pool(jobs) as pool:
        return list(tqdm(pool.imap(fn, tasks, chunksize=1), total=len(tasks), desc=desc, unit="file"))


def generate(out: Path, hidden: Path, seed: int, cfg: dict, jobs: int = 1) -> dict:
    """Write the competition layout under ``out`` and the hidden test set under ``hidden``."""
    sr = cfg["sample_rate"]
    taxonomy, templates = make_taxonomy(seed, cfg["genera"], cfg["species"], cfg["class_shares"],
                                        cfg["species_spread"])
    world = make_world(seed, sr, cfg, taxonomy, templates)
    out.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    taxonomy.to_csv(out / "taxonomy.csv", index=False)

    recs = recording_plan(world)
    for label in recs.primary_label.unique():
        (out / "train_audio" / label).mkdir(parents=True, exist_ok=True)
    results = _run([(world, r, str(out)) for r in recs.to_dict("records")], _recording_task, jobs, "recordings")
    write_train_csv(out, recs, results, taxonomy, world)

    scapes = soundscape_plan(world)
    (out / "train_soundscapes").mkdir(exist_ok=True)
    (hidden / "test_soundscapes").mkdir(exist_ok=True)
    tasks = [(world, r, str(hidden / "test_soundscapes" if r["split"] == "test" else out / "train_soundscapes"))
             for r in scapes.to_dict("records")]
    events = _run(tasks, _soundscape_task, jobs, "soundscapes")
    write_soundscape_tables(out, hidden, scapes, events, list(taxonomy.primary_label), cfg, seed)
    return dict(species=len(taxonomy), recordings=len(recs), soundscapes=len(scapes))


def write_train_csv(out: Path, recs: pd.DataFrame, results: list[dict], taxonomy: pd.DataFrame,
                    world: World) -> None:
    tax = taxonomy.set_index("primary_label")
    rows = []
    for rec, res in zip(recs.to_dict("records"), results):
        r = rng_for(world.seed, RECORDING, 10_000_000 + int(rec["index"]))
        site = int(np.argmax(world.site_weight[rec["primary_label"]] * r.random(world.cfg["sites"])))
        lat, lon = _site_location(site, world.seed)
        label = rec["primary_label"]
        rows.append(dict(
            primary_label=label, secondary_labels=str(res["secondary_labels"]),
            type=str(["call"] if r.random() < 0.5 else ["song"]),
            filename=f"{label}/{rec['recording_id']}.flac", collection="XC", rating=res["rating"],
            latitude=round(lat + r.normal(0, 0.2), 4), longitude=round(lon + r.normal(0, 0.2), 4),
            scientific_name=tax.loc[label, "scientific_name"], common_name=tax.loc[label, "common_name"],
            author=f"Recordist {int(r.integers(1, 60)):02d}", license="cc-by-nc-sa 4.0",
            url=f"https://xeno-canto.org/{rec['recording_id'][2:]}"))
    pd.DataFrame(rows).to_csv(out / "train.csv", index=False)


def write_soundscape_tables(out: Path, hidden: Path, scapes: pd.DataFrame, events: list, labels: list[str],
                            cfg: dict, seed: int) -> None:
    """train_soundscapes_labels.csv (labelled part), and the hidden solution, boards, sample submission."""
    chunk_s, dur = cfg["chunk_s"], cfg["soundscape_s"]
    label_rows, solution_rows, boards = [], [], []
    rng = rng_for(seed, LAYOUT, 3)
    for row, ev in zip(scapes.to_dict("records"), events):
        per_chunk = chunk_labels(ev, dur, chunk_s, cfg["min_overlap_s"])
        for c, lbls in enumerate(per_chunk):
            if row["split"] == "labelled":
                label_rows.append(dict(filename=f"{row['stem']}.flac", start=hhmmss(c * chunk_s),
                                       end=hhmmss((c + 1) * chunk_s), primary_label=";".join(lbls)))
            elif row["split"] == "test":
                solution_rows.append({"row_id": f"{row['stem']}_{(c + 1) * chunk_s}",
                                      **{lbl: int(lbl in lbls) for lbl in labels}})
        if row["split"] == "test":
            boards.append(row["stem"])
    pd.DataFrame(label_rows, columns=["filename", "start", "end", "primary_label"]).to_csv(
        out / "train_soundscapes_labels.csv", index=False)
    solution = pd.DataFrame(solution_rows, columns=["row_id", *labels])
    solution.to_csv(hidden / "solution.csv", index=False)
    public = rng.permutation(len(boards))[: int(round(cfg["public_fraction"] * len(boards)))]
    pd.DataFrame({"filename": boards, "board": ["public" if i in set(public) else "private"
                                                for i in range(len(boards))]}).to_csv(hidden / "boards.csv", index=False)
    sample = solution[["row_id"]].copy()
    for lbl in labels:
        sample[lbl] = round(1 / len(labels), 6)
    for folder in (out, hidden):
        sample.to_csv(folder / "sample_submission.csv", index=False)
