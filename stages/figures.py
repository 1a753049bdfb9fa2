"""Stage `figures`: Figure 2 (per-species trajectories). Figure 3 (the two pipelines) is
drawn by the `blend` stage, which has its params in force: a blend experiment then re-runs no
figure stage.

Figure 2 reads the extracted features (data/features: windows.csv and block_<ii>.npy, the focal
windows) of the probe's species (build/metrics/probe/probe.json `species`) or of every focal
species, through the last `figures.trajectories.n_last` blocks (or a list), and writes
build/figures/trajectories.png and build/metrics/figures/trajectories.json (coordinates, path
lengths, the showcase species).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.io.files import read_json, write_json
from birdclef_eos.report.trajectories import plot_trajectories, trajectories
from birdclef_eos.report.trajectories_config import Trajectories
from stages.paths import FEATURES, FIGURES_METRICS, PROBE_METRICS, TRAJECTORIES_FIGURE

PARAMS = ("figures.trajectories",)


class FiguresError(ValueError):
    pass


@dataclass
class FiguresResult:
    """What the notebook shows: trajectories (trajectories.json without the species list), seconds."""
    trajectories: dict
    seconds: float


def chosen_blocks(cfg: Trajectories, stored: list[int]) -> list[int]:
    if cfg.blocks == "last":
        if cfg.n_last > len(stored):
            raise FiguresError(f"figures.trajectories.n_last = {cfg.n_last}: only {len(stored)} blocks extracted")
        return stored[-cfg.n_last:]
    missing = [b for b in cfg.blocks if b not in stored]
    if missing:
        raise FiguresError(f"figures.trajectories.blocks {cfg.blocks}: blocks {missing} are not in "
                           f"{FEATURES}/meta.json (extracted: {stored})")
    return list(cfg.blocks)


def figure2(cfg: Trajectories) -> dict:
    meta = read_json(FEATURES / "meta.json", "run the extract stage")
    blocks = chosen_blocks(cfg, list(meta["blocks"]))
    windows = pd.read_csv(FEATURES / "windows.csv", usecols=["source", "primary_label"], dtype=str,
                          keep_default_na=False)
    focal = np.flatnonzero(windows["source"].to_numpy() == "focal")
    labels = windows["primary_label"].to_numpy()[focal]
    if cfg.species == "probe":
        species = [str(s) for s in read_json(PROBE_METRICS / "probe.json", "run the probe stage")["species"]]
    else:
        species = sorted(set(labels))
    feats = [np.load(FEATURES / f"block_{b:02d}.npy", mmap_mode="r")[focal] for b in blocks]
    t = trajectories(feats, blocks, labels, species, width=cfg.width, align=cfg.align, method=cfg.method,
                     seed=cfg.seed, perplexity=cfg.perplexity, showcase=cfg.showcase)
    plot_trajectories(t, TRAJECTORIES_FIGURE,
                      f"Per-species centroids, blocks {blocks[0]} -> {blocks[-1]} ({len(species)} species; "
                      f"joint {cfg.method}, PCA width {t.width}, {cfg.align})")
    out = t.as_dict()
    out["species_source"] = cfg.species
    write_json(FIGURES_METRICS / "trajectories.json", out)
    return out


def run(params: dict, key: str | None = None) -> FiguresResult:
    started = time.perf_counter()
    # typed once (birdclef_eos/report/trajectories_config.py)
    traj = figure2(Trajectories.model_validate(params["figures"]["trajectories"]))
    summary = dict(traj)
    summary.pop("species")
    return FiguresResult(trajectories=json.loads(json.dumps(summary)), seconds=time.perf_counter() - started)
