"""Stage `figures` (issue 22): Figure 2 (per-species trajectories) and Figure 3 (the two pipelines).

Figure 2 reads the extracted features (data/features: windows.csv and block_<ii>.npy, the focal
windows) of the probe's species (build/metrics/probe/probe.json `species`) or of every focal
species, through the last `figures.trajectories.n_last` blocks (or a list), and writes
build/figures/trajectories.png and build/metrics/figures/trajectories.json (coordinates, path
lengths, the showcase species). Figure 3 is drawn from the params in force: the standalone
submission `figures.pipelines.standalone` (its `submissions` entry, the `postprocess` defaults, the
head's blocks from build/metrics/train/<model>/metrics.json) and the blend `figures.pipelines.blend`
(`blends.<name>` with the shared `blend` section), so `-S blend.weight=...` redraws it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.io.files import read_json, write_json
from birdclef_eos.report.pipelines import blend_drawing, plot_pipelines, standalone_steps
from birdclef_eos.report.trajectories import plot_trajectories, trajectories
from birdclef_eos.scoring.postprocess import resolve_knobs
from stages.paths import (FEATURES, FIGURES_METRICS, PIPELINES_FIGURE, PROBE_METRICS, TRAIN_METRICS,
                          TRAJECTORIES_FIGURE)

PARAMS = ("figures", "blend", "blends", "submissions", "postprocess", "backbone.name")


class FiguresError(ValueError):
    pass


@dataclass
class FiguresResult:
    """What the notebook shows: trajectories (trajectories.json), left / right (Figure 3's box
    labels), weights (the blend's resolved part weights), seconds."""
    trajectories: dict
    left: list[str]
    right: list[str]
    weights: dict[str, float]
    seconds: float


def chosen_blocks(cfg: dict, stored: list[int]) -> list[int]:
    if cfg["blocks"] == "last":
        if cfg["n_last"] > len(stored):
            raise FiguresError(f"figures.trajectories.n_last = {cfg['n_last']}: only {len(stored)} blocks extracted")
        return stored[-cfg["n_last"]:]
    missing = [b for b in cfg["blocks"] if b not in stored]
    if missing:
        raise FiguresError(f"figures.trajectories.blocks {cfg['blocks']}: blocks {missing} are not in "
                           f"{FEATURES}/meta.json (extracted: {stored})")
    return list(cfg["blocks"])


def figure2(cfg: dict) -> dict:
    meta = read_json(FEATURES / "meta.json", "run the extract stage")
    blocks = chosen_blocks(cfg, list(meta["blocks"]))
    windows = pd.read_csv(FEATURES / "windows.csv", usecols=["source", "primary_label"], dtype=str,
                          keep_default_na=False)
    focal = np.flatnonzero(windows["source"].to_numpy() == "focal")
    labels = windows["primary_label"].to_numpy()[focal]
    if cfg["species"] == "probe":
        species = [str(s) for s in read_json(PROBE_METRICS / "probe.json", "run the probe stage")["species"]]
    else:
        species = sorted(set(labels))
    feats = [np.load(FEATURES / f"block_{b:02d}.npy", mmap_mode="r")[focal] for b in blocks]
    t = trajectories(feats, blocks, labels, species, width=cfg["width"], align=cfg["align"], method=cfg["method"],
                     seed=cfg["seed"], perplexity=cfg["perplexity"], showcase=cfg["showcase"])
    plot_trajectories(t, TRAJECTORIES_FIGURE,
                      f"Per-species centroids, blocks {blocks[0]} -> {blocks[-1]} ({len(species)} species; "
                      f"joint {cfg['method']}, PCA width {t.width}, {cfg['align']})")
    out = t.as_dict()
    out["species_source"] = cfg["species"]
    write_json(FIGURES_METRICS / "trajectories.json", out)
    return out


def head_of(model: str) -> dict:
    """The head's variant, type, blocks and folds from its metrics.json (written by train/student)."""
    path = TRAIN_METRICS / model / "metrics.json"
    m = read_json(path, f"run the stage that trains {model}")
    return {"variant": model, "head": m.get("head", model), "blocks": m["blocks"],
            "n_folds": len(m.get("folds", [])) or "?"}


def figure3(cfg: dict, params: dict) -> tuple[list[str], list[str], dict]:
    name, blend_name = cfg["standalone"], cfg["blend"]
    subs, blends = params["submissions"], params["blends"]
    if name not in subs:
        raise FiguresError(f"figures.pipelines.standalone = {name!r}: not a key of submissions ({' | '.join(subs)})")
    if blend_name not in blends:
        raise FiguresError(f"figures.pipelines.blend = {blend_name!r}: not a key of blends ({' | '.join(blends)})")
    entry = subs[name]
    knobs = resolve_knobs(params["postprocess"], entry.get("postprocess", False), name).__dict__
    left = standalone_steps(name, params["backbone"]["name"], head_of(entry["model"]), entry.get("tta", [0.0]), knobs)
    describe = {p: f"{subs[p]['model']} head" for p in blends[blend_name]["parts"] if p in subs}
    right = blend_drawing(blend_name, blends[blend_name], params["blend"], describe)
    plot_pipelines(f"Standalone {name}", left, f"Blend {blend_name}", right, PIPELINES_FIGURE)
    weights = {p: round(w, 6) for p, w, _ in right.parts}
    return left, right.steps, weights


def run(params: dict, key: str | None = None) -> FiguresResult:
    started = time.perf_counter()
    cfg = params["figures"]
    traj = figure2(cfg["trajectories"])
    left, right, weights = figure3(cfg["pipelines"], params)
    summary = dict(traj)
    summary.pop("species")
    write_json(FIGURES_METRICS / "pipelines.json", {"standalone": left, "blend": right, "weights": weights})
    return FiguresResult(trajectories=json.loads(json.dumps(summary)), left=left, right=right, weights=weights,
                         seconds=time.perf_counter() - started)
