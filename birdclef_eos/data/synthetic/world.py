"""The world of the synthetic set: where and when species call, and rendering one item.

``make_world`` draws per-species site presence, hour activity and abundance; a share of each
species' site and hour profile (``genus_share``) is inherited from a profile drawn for its genus, as
congeners tend to share habitat and activity hours (niche conservatism); ``recording_specs``
and ``soundscape_specs`` list the items to render; ``render_recording`` and ``render_soundscape``
write one FLAC each (byte-stable, ``birdclef_eos.audio.decode.write_flac``) from its own random stream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.audio.decode import write_flac
from birdclef_eos.data.synthetic.sound import background, peak_normalise, place, propagate, render_call
from birdclef_eos.data.synthetic.taxonomy import LAYOUT, RECORDING, SOUNDSCAPE, rng_for

SITE_HOURS = np.arange(24)


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


def _genus_profiles(seed: int, cfg: dict, taxonomy: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{genus: (site weight, hour weight)}, drawn as a species' own are, from a stream of its own
    (``rng_for(seed, LAYOUT, 3)``), so the species' draws are the same whatever ``genus_share`` is."""
    rng = rng_for(seed, LAYOUT, 3)
    genus = taxonomy.scientific_name.str.split().str[0]
    out = {}
    for name, cls in zip(genus, taxonomy.class_name):
        if name not in out:
            present = rng.random(cfg["sites"]) < cfg["site_presence"]
            if not present.any():
                present[rng.integers(cfg["sites"])] = True
            out[name] = (present * rng.lognormal(0, 0.7, cfg["sites"]), _hour_profile(cls, rng))
    return out


def make_world(seed: int, sr: int, cfg: dict, taxonomy: pd.DataFrame, templates: dict) -> World:
    """Per species: site weight (0 where absent), hour activity and abundance. With
    ``cfg["genus_share"]`` g > 0 a species' site and hour weights are (1 - g) x its own + g x its
    genus'; g = 0 leaves every species independent of its congeners (the same bytes as a world
    without the knob)."""
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
    share = float(cfg["genus_share"])
    if share > 0:
        profiles = _genus_profiles(seed, cfg, taxonomy)
        for label, sci in zip(taxonomy.primary_label, taxonomy.scientific_name):
            site, hour = profiles[sci.split()[0]]
            world.site_weight[label] = (1 - share) * world.site_weight[label] + share * site
            world.hour_weight[label] = (1 - share) * world.hour_weight[label] + share * hour
    return world


def recording_specs(world: World) -> pd.DataFrame:
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


def soundscape_specs(world: World) -> pd.DataFrame:
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
    write_flac(out_path, peak_normalise(mix, rng.uniform(0.3, 0.9)), sr)
    rating = float(np.clip(np.round(2 * (2.5 + rng.normal(0, 1) - 1.0 * len(secondary))) / 2, 0.5, 5.0))
    return dict(secondary_labels=secondary, rating=rating)


def soundscape_events(world: World, site: int, hour: int, rng: np.random.Generator,
                      duration_s: float) -> list[tuple[str, float, float, float]]:
    """Which species call when and how far: (label, start_s, duration_hint, distance_m).
    The expected number of bouts follows abundance x site weight x hour activity."""
    cfg, bouts = world.cfg, []
    for label in world.labels:
        rate = cfg["bouts_per_soundscape"] * world.abundance[label] * world.site_weight[label][site] \
            * world.hour_weight[label][hour] / len(world.labels) * 8
        for _ in range(rng.poisson(rate)):
            bouts.append((label, float(rng.uniform(-2, duration_s - 1)),
                          float(rng.uniform(*cfg["bout_s"])), float(np.exp(rng.uniform(0, np.log(80))))))
    return bouts


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
    write_flac(out_path, peak_normalise(mix, rng.uniform(0.3, 0.9)), sr)
    return events
