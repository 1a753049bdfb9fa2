"""Stage `predict@<submission>`: hidden-test predictions of one trained head, TTA and
post-processing, written as a competition submission with a manifest.

Reads the `submissions.<name>` entry (model, tta, postprocess) and the shared `postprocess`
defaults. Depends on the trained checkpoints and the features, never on train params, so a
post-processing change re-runs only this stage and the leaderboard.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from birdclef_eos.scoring import postprocess
from birdclef_eos.scoring import submission
from birdclef_eos.io.files import atomic_dir, sha256_tree
from stages.paths import FEATURES, HEADS, HIDDEN, INDEX, SUBMISSIONS

PARAMS = ("postprocess", "submissions")
STEP_KNOBS = ("prior_alpha", "sigma", "rank_power", "neighbour_base", "tax_genus_alpha", "tax_class_alpha")


class PredictError(ValueError):
    pass


def resolve_knobs(defaults: dict, entry: dict, name: str) -> dict:
    """The post-processing knobs of one submission: `postprocess: false` switches every step off,
    `true` takes the shared defaults, a mapping overrides some of them."""
    post = entry.get("postprocess", False)
    knobs = dict(defaults)
    if post is False or post is None:
        knobs.update({k: 0.0 for k in STEP_KNOBS})
    elif isinstance(post, dict):
        unknown = sorted(set(post) - set(defaults))
        if unknown:
            raise PredictError(f"submissions.{name}.postprocess: unknown knob(s) {unknown}; "
                               f"known: {sorted(defaults)}")
        knobs.update(post)
    elif post is not True:
        raise PredictError(f"submissions.{name}.postprocess must be true, false or a mapping, not {post!r}")
    return knobs


def shift_rows(windows: pd.DataFrame, shift: float) -> np.ndarray:
    """Feature-row indices of the test chunks at one TTA shift, ordered by file then chunk."""
    test = windows[(windows["source"] == "test") & np.isclose(windows["shift_s"].astype(float), shift)]
    if test.empty:
        shifts = sorted(windows.loc[windows["source"] == "test", "shift_s"].astype(float).unique())
        raise PredictError(f"{FEATURES}/windows.csv: no test windows at shift {shift} s "
                           f"(extracted shifts: {shifts}); add it to the extract stage's shift set")
    return test.sort_values(["file_id", "chunk"]).index.to_numpy()


def predict_shifts(models, windows, arrays, names, shifts) -> tuple[pd.DataFrame, np.ndarray]:
    """Head probabilities for every shift, aligned on the shift-0 row order, then averaged."""
    reference, per_shift = None, []
    for shift in tqdm(shifts, desc="TTA shifts", leave=False):
        idx = shift_rows(windows, float(shift))
        rows = windows.loc[idx].reset_index(drop=True)
        if reference is None:
            reference = rows
        elif list(rows["row_id"]) != list(reference["row_id"]):
            raise PredictError(f"{FEATURES}/windows.csv: test rows at shift {shift} s do not match "
                               f"those at shift {shifts[0]} s")
        per_shift.append(heads.predict_proba(models, [np.asarray(arrays[n])[idx] for n in names]))
    return reference, per_shift


def submission_order(chunks: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """sample_submission.csv when the hidden folder has one; otherwise the index's test chunks."""
    path = HIDDEN / "sample_submission.csv"
    if path.exists():
        sample = pd.read_csv(path, dtype={"row_id": str})
        if list(sample.columns[1:]) != labels:
            raise PredictError(f"{path}: label columns differ from {INDEX}/species.csv order")
        return sample
    test = chunks[chunks["split"] == "test"]
    return pd.DataFrame({"row_id": test["row_id"].astype(str)}).assign(**{c: 0.0 for c in labels})


def used_inputs(model_dir: Path, names: list[str]) -> list[Path]:
    files = [FEATURES / "windows.csv", FEATURES / "meta.json"] + [FEATURES / f"{n}.npy" for n in names]
    files += [INDEX / "species.csv", INDEX / "chunks.csv", model_dir]
    sample = HIDDEN / "sample_submission.csv"
    return files + ([sample] if sample.exists() else [])


def run(params: dict, key: str | None = None) -> dict:
    entries = params["submissions"]
    if key not in entries:
        raise PredictError(f"params.yaml: no submission '{key}' under `submissions:` ({sorted(entries)})")
    entry = entries[key]
    knobs = resolve_knobs(params["postprocess"], entry, key)
    shifts = [float(s) for s in entry.get("tta", [0.0])]
    model_dir = HEADS / entry["model"]

    species = pd.read_csv(INDEX / "species.csv", keep_default_na=False).sort_values("label_idx")
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    models, config = heads.load_variant(model_dir)
    if config.get("labels") not in (None, labels):
        raise PredictError(f"{model_dir}/config.json: label order differs from {INDEX}/species.csv")

    _, _, meta = features.load(FEATURES, names=[])
    blocks = config.get("blocks", meta["blocks"])
    names = [f"block_{i:02d}" for i in blocks]
    windows, arrays, meta = features.load(FEATURES, names=names)
    rows, per_shift = predict_shifts(models, windows, arrays, names, shifts)
    probs = postprocess.average_shifts(per_shift, knobs["tta_space"])

    prior = postprocess.fit_prior(chunks, labels) if knobs["prior_alpha"] else None
    probs = postprocess.postprocess(probs, rows, knobs, prior=prior, species=species)

    order = submission_order(chunks, labels)
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"submission '{key}'")
    manifest = {"submission": key, "model": entry["model"], "tta": shifts, "entry": entry,
                "postprocess": knobs, "rows": len(sub), "labels": len(labels),
                "sha256": sha256_tree(used_inputs(model_dir, names))}
    out = SUBMISSIONS / key
    with atomic_dir(out) as tmp:
        sub.to_csv(tmp / "submission.csv", index=False, float_format="%.6f")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return {"submission": key, "model": entry["model"], "tta": shifts, "rows": len(sub),
            "labels": len(labels), "knobs": {k: knobs[k] for k in STEP_KNOBS}, "path": str(out)}

