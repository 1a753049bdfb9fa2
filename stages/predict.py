"""Stage `predict@<submission>`: the raw hidden-test probabilities of one trained head, one array
per TTA shift, before any post-processing.

Reads the `submissions.<name>` entry's `model` and `tta` only, never `postprocess`: the expensive
part (loading the folds, one forward pass per shift) depends on the checkpoints and the features
alone, so a post-processing change re-runs the `submit` stage (arithmetic) and not this one.
Writes predictions/raw/<name>/: per_shift.npy ([shifts, rows, labels], the heads' fold-mean
probabilities, in `tta` order), row_ids.csv (the rows, ordered by file then chunk) and
manifest.json (model, tta, labels, the sha256 of every input used).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdclef_eos.data import features
from birdclef_eos.data.species import species_table
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.inference import NoTestWindows, predict_shifts
from birdclef_eos.io.files import atomic_dir, sha256_tree
from birdclef_eos.scoring.submission_config import Submission
from stages.paths import FEATURES, HEADS, INDEX

# predictions/raw/<name>/ (read by stages/submit.py, which names the same folder; kept out of stages/paths.py,
# whose every edit re-runs the whole pipeline)
RAW_PREDICTIONS = Path("predictions/raw")

PARAMS = ("submissions.{key}.model", "submissions.{key}.tta")


class PredictError(ValueError):
    pass


@dataclass
class PredictResult:
    """What the predict notebook shows. shape: [shifts, rows, labels] of per_shift.npy; path: its folder."""
    submission: str
    model: str
    tta: list[float]
    rows: int
    labels: int
    shape: list[int]
    path: str


def used_inputs(model_dir: Path, names: list[str]) -> list[Path]:
    files = [FEATURES / "windows.csv", FEATURES / "meta.json"] + [FEATURES / f"{n}.npy" for n in names]
    return files + [INDEX / "species.csv", INDEX / "chunks.csv", model_dir]


def run(params: dict, key: str | None = None) -> PredictResult:
    entries = params["submissions"]
    if key not in entries:
        raise PredictError(f"params.yaml: no submission '{key}' under `submissions:` ({sorted(entries)})")
    entry = Submission.model_validate(entries[key])  # typed once (birdclef_eos/scoring/submission_config.py)
    shifts = [float(s) for s in entry.tta]
    model_dir = HEADS / entry.model

    species = species_table(INDEX)
    labels = species["primary_label"].astype(str).tolist()
    models, config = heads.load_variant(model_dir)
    if config.get("labels") not in (None, labels):
        raise PredictError(f"{model_dir}/config.json: label order differs from {INDEX}/species.csv")

    names = config.get("tokens") or [f"block_{i:02d}" for i in config["blocks"]]  # tokens: e.g. ["embedding"]
    windows, arrays, _ = features.load(FEATURES, names=names)
    try:
        rows, per_shift = predict_shifts(models, windows, arrays, names, shifts)
    except NoTestWindows as exc:
        raise PredictError(f"{FEATURES}/{exc}. In real-data mode the competition's test_soundscapes/ is empty "
                           "outside Kaggle: set dataset.holdout.share above 0 for a local board made from the "
                           "labelled train soundscapes, and submit through the kernel bundle (README, Kaggle "
                           "kernels)") from exc
    stack = np.stack(per_shift)
    manifest = {"submission": key, "model": entry.model, "tta": shifts, "labels": labels,
                "shape": list(stack.shape), "dtype": str(stack.dtype),
                "sha256": sha256_tree(used_inputs(model_dir, names)),
                "bytes_depend_on": config.get("bytes_depend_on")}  # the training runtime (docs/reproducibility.md)
    out = RAW_PREDICTIONS / key
    with atomic_dir(out) as tmp:
        np.save(tmp / "per_shift.npy", stack)
        rows[["row_id"]].astype(str).to_csv(tmp / "row_ids.csv", index=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return PredictResult(submission=key, model=entry.model, tta=shifts, rows=len(rows), labels=len(labels),
                         shape=list(stack.shape), path=str(out))
