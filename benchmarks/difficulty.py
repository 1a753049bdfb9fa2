"""Difficulty of the synthetic set: a plain log-mel mean/std 1-NN on held-out recordings.

Features: per mel band, the mean and standard deviation over time of the log-mel spectrogram of
each recording's first 5 s, standardised. Half of each species' recordings (at least one) are the
reference set, the other half are classified by their nearest reference (Euclidean). The issue
asks for well under 80% species accuracy: the figure is printed with its ratio to that limit.

Usage: python benchmarks/difficulty.py [--index data/index]   (after `dvc repro dataset`)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from birdclef_eos.audio.decode import load_window, log_mel  # noqa: E402

LIMIT = 0.80
ROOT = Path(__file__).resolve().parent.parent


def features(paths: list[str], repo: Path, sample_rate: int = 32000) -> np.ndarray:
    rows = []
    for p in tqdm(paths, desc="log-mel", unit="file"):
        m = log_mel(load_window(repo / p, 0.0, 5.0, sample_rate), sample_rate)
        rows.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    x = np.stack(rows)
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


def split(recordings: pd.DataFrame, seed: int) -> np.ndarray:
    """Boolean mask of the held-out half (species with at least two recordings only)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(recordings), dtype=bool)
    for _, idx in recordings.groupby("primary_label").indices.items():
        if len(idx) >= 2:
            held[rng.permutation(idx)[: len(idx) // 2]] = True
    return held


def one_nn_accuracy(x: np.ndarray, y: np.ndarray, held: np.ndarray) -> float:
    ref, query = x[~held], x[held]
    d = ((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    return float((y[~held][d.argmin(1)] == y[held]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default=str(ROOT / "data/index"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/difficulty.json"))
    args = ap.parse_args()
    rec = pd.read_csv(Path(args.index) / "recordings.csv", keep_default_na=False)
    species = pd.read_csv(Path(args.index) / "species.csv", keep_default_na=False)
    x = features(list(rec.path), Path(args.index).resolve().parent.parent)  # paths are repo-relative
    y = rec.primary_label.to_numpy()
    held = split(rec, args.seed)
    acc = one_nn_accuracy(x, y, held)
    genus = dict(zip(species.primary_label, species.genus))
    ref_y = y[~held][(((x[held][:, None] - x[~held][None]) ** 2).sum(-1)).argmin(1)]
    genus_acc = float(np.mean([genus[a] == genus[b] for a, b in zip(ref_y, y[held])]))
    result = dict(one_nn_species_accuracy=round(acc, 4), one_nn_genus_accuracy=round(genus_acc, 4),
                  limit=LIMIT, ratio_to_limit=round(acc / LIMIT, 4), chance=round(1 / len(set(y)), 4),
                  n_species=int(len(set(y))), n_reference=int((~held).sum()), n_held_out=int(held.sum()),
                  feature="log-mel (64 bands) mean+std over the first 5 s, standardised; Euclidean 1-NN")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"1-NN species accuracy {acc:.3f} (genus {genus_acc:.3f}, chance {1 / len(set(y)):.3f}); "
          f"limit {LIMIT:.2f}; ratio {acc / LIMIT:.3f} -> {'OK' if acc < LIMIT else 'TOO EASY'}")


if __name__ == "__main__":
    main()
