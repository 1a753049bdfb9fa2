"""A tiny fake tree for the predict and leaderboard stages: index, feature store, two trained heads
(written with the real heads module) and a hidden solution with public/private boards."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from birdclef_eos.data import features
from birdclef_eos.scoring.blend import rank_columns
from birdclef_eos.heads import models as heads

LABELS = ["a", "b", "c", "d"]
BLOCKS, CHANNELS = [3, 5], [4, 3]
TEST_FILES = [("T1", "S1", 6, "public"), ("T2", "S2", 7, "private"), ("T3", "S1", 7, "private")]
SHIFTS = [-1.0, 0.0, 1.0]


def write_index(root: Path, rng) -> None:
    index = root / "data/index"
    index.mkdir(parents=True)
    pd.DataFrame({"label_idx": range(4), "primary_label": LABELS, "scientific_name": ["G x", "G y", "H z", "K w"],
                  "common_name": LABELS, "genus": ["G", "G", "H", "K"],
                  "class_name": ["Aves", "Aves", "Aves", "Amphibia"]}).to_csv(index / "species.csv", index=False)
    rows = []
    for stem, site, hour in [("L1", "S1", 6), ("L2", "S2", 7)]:
        for c in range(12):
            labels = ";".join(label for label in LABELS if rng.random() < 0.3)
            rows.append((f"{stem}_{5 * c + 5}", stem, c, "labelled", site, hour, labels))
    for stem, site, hour, _ in TEST_FILES:
        rows += [(f"{stem}_{5 * c + 5}", stem, c, "test", site, hour, "") for c in range(12)]
    chunks = pd.DataFrame(rows, columns=["row_id", "soundscape_id", "chunk", "split", "site", "hour", "labels"])
    chunks.assign(start_s=chunks.chunk * 5, end_s=chunks.chunk * 5 + 5).to_csv(index / "chunks.csv", index=False)


def write_features(root: Path, rng, shifts=SHIFTS) -> None:
    rows = [dict(source="test", file_id=stem, start_s=5 * c + s, shift_s=s, row_id=f"{stem}_{5 * c + 5}", chunk=c,
                 split="test", primary_label="", labels="", secondary_labels="", site=site, hour=hour)
            for s in shifts for stem, site, hour, _ in TEST_FILES for c in range(12)]
    rows += [dict(source="focal", file_id="a/XC1", start_s=0.0, shift_s=0.0, row_id="", chunk="", split="focal",
                  primary_label="a", labels="a", secondary_labels="", site="", hour="")]
    windows = pd.DataFrame(rows)
    arrays = {f"block_{b:02d}": rng.normal(size=(len(windows), c)).astype(np.float32) for b, c in zip(BLOCKS, CHANNELS)}
    features.save(root / "data/features", windows, arrays, {"blocks": BLOCKS, "channels": CHANNELS})


def write_head(root: Path, variant: str, model: dict, folds: int = 2) -> None:
    folder = root / "models/heads" / variant
    folder.mkdir(parents=True)
    config = {"model": {"channels": CHANNELS, "n_classes": len(LABELS), "d": 8, "dropout": 0.0, **model},
              "n_folds": folds, "blocks": BLOCKS, "labels": LABELS}
    (folder / "config.json").write_text(json.dumps(config))
    for k in range(folds):
        torch.manual_seed(k)
        torch.save(heads.build_head(config["model"]).state_dict(), folder / f"fold_{k}.pt")


def write_hidden(root: Path, rng) -> None:
    hidden = root / "data/hidden"
    hidden.mkdir(parents=True)
    row_ids = [f"{stem}_{5 * c + 5}" for stem, *_ in TEST_FILES for c in range(12)]
    y = (rng.random((len(row_ids), len(LABELS))) < 0.3).astype(int)
    y[0], y[12] = 1, 1          # every label positive on both boards
    y[1], y[13] = 0, 0          # and negative on both
    pd.DataFrame(y, columns=LABELS).assign(row_id=row_ids)[["row_id", *LABELS]].to_csv(hidden / "solution.csv", index=False)
    pd.DataFrame({"row_id": row_ids, **{label: 0.0 for label in LABELS}}).to_csv(hidden / "sample_submission.csv", index=False)
    pd.DataFrame({"soundscape_id": [t[0] for t in TEST_FILES], "board": [t[3] for t in TEST_FILES]}).to_csv(
        hidden / "boards.csv", index=False)


def make_tree(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    write_index(root, rng)
    write_features(root, rng)
    write_head(root, "scalarmix", {"type": "scalarmix"})
    write_head(root, "attn", {"type": "attn", "heads": 2, "ffn": 16})
    write_hidden(root, rng)
    (root / "paper").mkdir()
    (root / "paper/reported.yaml").write_text(
        "table1: {}\ntable2:\n  v1: {description: focal only, public: 0.816}\n  v6: {description: priors, public: 0.879}\n")
    (root / "leaderboard").mkdir()
    (root / "leaderboard/kaggle.yaml").write_text("[]\n")


def write_base_oof(root: Path, seed: int = 5, head_signal: float = 2.0) -> None:
    """predictions/oof/base/ as the base stage writes it: the base rank-valued and weakly informed, the
    head a small-scale probability that knows the labels (so rank space hears it and prob does not)."""
    chunks = pd.read_csv(root / "data/index/chunks.csv", keep_default_na=False, dtype={"labels": str})
    rows = chunks[chunks["split"] == "labelled"]
    y = np.array([[label in cell.split(";") for label in LABELS] for cell in rows["labels"]], dtype=float)
    rng = np.random.default_rng(seed)
    parts = {"base": rank_columns(0.3 * y + rng.normal(size=y.shape)),
             "reference": 0.02 * (head_signal * y + rng.normal(size=y.shape)) + 0.05}
    folder = root / "predictions/oof/base"
    folder.mkdir(parents=True)
    for name, P in parts.items():
        pd.DataFrame(P, columns=LABELS).assign(row_id=rows["row_id"].to_numpy())[["row_id", *LABELS]].to_csv(
            folder / f"{name}.csv", index=False)
    (folder / "parts.json").write_text(json.dumps({"oof": {"base": "base.csv", "reference": "reference.csv"},
                                                   "reference": "attn"}))
