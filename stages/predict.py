"""Stage `predict@<submission>`: hidden-test predictions of one trained head, TTA and
post-processing, written as a competition submission with a manifest.

Reads the `submissions.<name>` entry (model, tta, postprocess) and the shared `postprocess`
defaults. Depends on the trained checkpoints and the features, never on train params, so a
post-processing change re-runs only this stage and the leaderboard.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.inference import NoTestWindows, predict_shifts
from birdclef_eos.io.files import atomic_dir, sha256_file, sha256_tree
from birdclef_eos.scoring import postprocess, submission
from stages.paths import FEATURES, HEADS, HIDDEN, INDEX, SUBMISSIONS

PARAMS = ("postprocess", "submissions.{key}")


class PredictError(ValueError):
    pass


@dataclass
class PredictResult:
    """What the predict notebook shows. rows x labels: the submission's shape; knobs: the
    post-processing step knobs it ran with; submission_sha256: sha256 of submission.csv (what a
    Kaggle score in leaderboard/kaggle.yaml must name)."""
    submission: str
    model: str
    tta: list[float]
    rows: int
    labels: int
    knobs: dict
    path: str
    submission_sha256: str


def used_inputs(model_dir: Path, names: list[str]) -> list[Path]:
    files = [FEATURES / "windows.csv", FEATURES / "meta.json"] + [FEATURES / f"{n}.npy" for n in names]
    files += [INDEX / "species.csv", INDEX / "chunks.csv", model_dir]
    sample = HIDDEN / "sample_submission.csv"
    return files + ([sample] if sample.exists() else [])


def run(params: dict, key: str | None = None) -> PredictResult:
    entries = params["submissions"]
    if key not in entries:
        raise PredictError(f"params.yaml: no submission '{key}' under `submissions:` ({sorted(entries)})")
    entry = entries[key]
    knobs = postprocess.resolve_knobs(params["postprocess"], entry.get("postprocess", False), key)
    shifts = [float(s) for s in entry["tta"]]
    model_dir = HEADS / entry["model"]

    species = pd.read_csv(INDEX / "species.csv", keep_default_na=False).sort_values("label_idx")
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
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
    probs = postprocess.average_shifts(per_shift, knobs.tta_space)

    prior = postprocess.fit_prior(chunks, labels) if knobs.prior_alpha else None
    probs = postprocess.postprocess(probs, rows, knobs, prior=prior, species=species)

    order = submission.order_frame(HIDDEN / "sample_submission.csv", chunks, labels)
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"submission '{key}'")
    manifest = {"submission": key, "model": entry["model"], "tta": shifts, "entry": entry,
                "postprocess": asdict(knobs), "rows": len(sub), "labels": len(labels),
                "sha256": sha256_tree(used_inputs(model_dir, names)),
                "bytes_depend_on": config.get("bytes_depend_on")}  # the training runtime (docs/reproducibility.md)
    out = SUBMISSIONS / key
    with atomic_dir(out) as tmp:
        sub.to_csv(tmp / "submission.csv", index=False, float_format="%.6f")
        manifest["submission_sha256"] = sha256_file(tmp / "submission.csv")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return PredictResult(submission=key, model=entry["model"], tta=shifts, rows=len(sub), labels=len(labels),
                         knobs={k: getattr(knobs, k) for k in postprocess.STEP_KNOBS}, path=str(out),
                         submission_sha256=manifest["submission_sha256"])
