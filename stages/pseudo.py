"""Stage `pseudo`: the teacher's soft labels for every unlabelled soundscape chunk.

Reads the fold models of the train variant `pseudo.teacher` (models/heads/<teacher>/) and the
features of every unlabelled soundscape chunk at shift 0 (data/features). Writes data/pseudo/:
labels.npy (float32 [n_folds, N, K]: each teacher fold's probabilities), ensemble.npy ([N, K]:
their mean), rows.csv (row_id, file_id, in the arrays' order), labels.txt (the K class names) and
summary.json (chunks, files, mean labels per chunk above 0.5, mean top confidence), and a copy of
the summary in build/metrics/pseudo/summary.json. The labels stay raw: `pseudo.mode`, `gate`,
`floor` and `power` are applied by the students when they read them (birdclef_eos/heads/pseudo.py).

A folder with no unlabelled soundscapes (another year's, or a user's subset) is not an error: the
set is written empty (N = 0) and summary.json says why under "skipped"; the students then train
without a pseudo share (stages/student.py) and the pseudo table prints the note.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from birdclef_eos.heads import pseudo as pseudo_labels
from birdclef_eos.heads.config import PseudoTeacher
from birdclef_eos.io.files import atomic_dir, write_json
from stages.paths import FEATURES, HEADS, PSEUDO, PSEUDO_METRICS

PARAMS = ("pseudo.teacher",)


class PseudoStageError(ValueError):
    pass


@dataclass
class PseudoResult:
    """What the pseudo notebook shows. summary: data/pseudo/summary.json; seconds: wall time."""
    summary: dict
    seconds: float


NO_UNLABELLED = "no unlabelled soundscape chunks at shift 0 in data/features (the folder has no unlabelled train soundscapes)"


def unlabelled_rows(windows):
    return windows[(windows["source"] == "soundscape") & (windows["split"] == "unlabelled")
                   & np.isclose(windows["shift_s"].astype(float), 0.0)]


def run(params: dict, key: str | None = None) -> PseudoResult:
    started = time.perf_counter()
    teacher = PseudoTeacher.pick(params["pseudo"]).teacher  # birdclef_eos/heads/config.py
    folder = HEADS / teacher
    if not (folder / "config.json").exists():
        raise PseudoStageError(f"pseudo.teacher '{teacher}': {folder}/config.json missing; run train@{teacher}")
    models, config = heads.load_variant(folder)
    windows, arrays, _ = features.load(FEATURES, names=config["tokens"])
    rows = unlabelled_rows(windows)
    idx = rows.index.to_numpy()
    if rows.empty:
        per_fold = np.zeros((len(models), 0, len(config["labels"])), dtype=np.float32)
    else:
        blocks = [np.asarray(arrays[n])[idx] for n in config["tokens"]]
        per_fold = np.stack([heads.predict_proba([m], blocks) for m in models]).astype(np.float32)
    summary = {"teacher": teacher, **pseudo_labels.summary(per_fold, rows["file_id"].to_numpy())}
    if rows.empty:
        summary["skipped"] = NO_UNLABELLED
    with atomic_dir(PSEUDO) as out:
        np.save(out / "labels.npy", per_fold)
        np.save(out / "ensemble.npy", per_fold.mean(axis=0).astype(np.float32))
        rows[["row_id", "file_id"]].astype(str).to_csv(out / "rows.csv", index=False)
        (out / "labels.txt").write_text("\n".join(config["labels"]) + "\n")
        write_json(out / "summary.json", summary)
    with atomic_dir(PSEUDO_METRICS) as out:
        write_json(out / "summary.json", summary)
    return PseudoResult(summary=summary, seconds=time.perf_counter() - started)
