"""Stage `student@<name>`: a head trained on focal windows, labelled soundscape chunks and
the teacher's pseudo-labelled unlabelled chunks (paper sections 7.1 and 7.2).

Each `students.<name>` entry names its unpseudo `twin` (a train variant) and the batch composition
`sources` ({focal, soundscape, pseudo} shares summing to 1). The student copies the twin's head
(models/heads/<twin>/config.json: type, width, blocks) and trains with the same folds, epochs and
seeds (train.*). The pseudo rows (data/pseudo, the `pseudo` stage) belong to no fold: every student
fold trains on them, with the labels `pseudo.mode` picks (`ensemble`: the teacher's 5-fold mean;
`fold`: student fold k gets teacher fold k's labels only) after `pseudo.gate`, `floor` and `power`; an entry's own `mode` overrides `pseudo.mode`, so both
modes can be trained in one run (the fold-teacher row of the pseudo table).
The OOF predictions cover the labelled soundscape chunks exactly as for the train variants.
Writes models/heads/<name>/, predictions/oof/<name>/oof.csv and build/metrics/train/<name>/metrics.json.

``run`` takes the params as the notebook passes them or as ``Params``, and types what it reads once
(birdclef_eos/heads/config.py: the `train` knobs, ``HeadFolds`` and ``TrainOptim``; `pseudo`,
``PseudoLabels``; its `students` entry, ``Student``; `runtime`, ``RuntimeParams``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from birdclef_eos.data import features
from birdclef_eos.data.species import species_labels
from birdclef_eos.heads import crossval, training
from birdclef_eos.heads import pseudo as pseudo_labels
from birdclef_eos.heads.config import HeadFolds, PseudoLabels, Student, TrainOptim
from birdclef_eos.io.files import read_json
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.runtime_config import RuntimeParams
from stages.paths import FEATURES, HEADS, INDEX, OOF, PSEUDO, TRAIN_METRICS

PARAMS = ("train.seed", "train.threads", "train.n_folds", "train.fold_salt", "train.secondary_weight",
          "train.optim", "pseudo.mode", "pseudo.gate", "pseudo.floor", "pseudo.power", "students.{key}")


class StudentStageError(ValueError):
    pass


@dataclass
class StudentResult:
    """What the student notebook shows: metrics (build/metrics/train/<name>/metrics.json), seconds,
    curves (the DVCLive folder, one per fold)."""
    metrics: dict
    seconds: float
    curves: str


def read_pseudo(labels: list[str], n_folds: int, mode: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows.csv, labels.npy [teacher folds, N, K]) after checking they fit the student."""
    for name in ("rows.csv", "labels.npy", "labels.txt"):
        if not (PSEUDO / name).exists():
            raise StudentStageError(f"{PSEUDO}/{name}: missing; run the pseudo stage")
    if (PSEUDO / "labels.txt").read_text().split() != labels:
        raise StudentStageError(f"{PSEUDO}/labels.txt: the teacher's classes differ from {INDEX}/species.csv")
    rows = pd.read_csv(PSEUDO / "rows.csv", dtype=str)
    per_fold = np.load(PSEUDO / "labels.npy")
    if mode == "fold" and len(per_fold) != n_folds:
        raise StudentStageError(f"pseudo.mode fold: the teacher has {len(per_fold)} folds, train.n_folds is {n_folds}")
    return rows, per_fold


@dataclass(frozen=True)
class Params:
    """What the stage reads: the heads' folds and optimiser, how a student reads the pseudo labels,
    the `students` entries it was handed (typed) and the unhashed `runtime`."""
    folds: HeadFolds
    optim: TrainOptim
    pseudo: PseudoLabels
    students: dict[str, Student]
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(HeadFolds.pick(params["train"]), TrainOptim.model_validate(params["train"]["optim"]),
                   PseudoLabels.pick(params["pseudo"]),
                   {k: Student.model_validate(v) for k, v in params.get("students", {}).items()},
                   RuntimeParams.model_validate(params["runtime"]))


def run(params: dict | Params, key: str | None = None) -> StudentResult:
    params = Params.of(params)
    train, cfg = params.folds, params.pseudo
    students = params.students
    if key not in students:
        raise StudentStageError(f"params.yaml students has no entry '{key}'")
    student = students[key]
    sources = pseudo_labels.check_fractions(student.sources.model_dump(), f"students.{key}.sources")
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(train.threads)

    twin = read_json(HEADS / student.twin / "config.json", f"run train@{student.twin}")
    names, mconfig = twin["tokens"], twin["model"]
    windows, arrays, _ = features.load(FEATURES, names=names)
    labels = species_labels(INDEX)
    data = crossval.fold_data(windows, arrays, names, labels, train.secondary_weight, train.n_folds,
                              train.fold_salt)
    mode = cfg.mode if student.mode is None else student.mode

    p_rows, per_fold = read_pseudo(labels, train.n_folds, mode)
    pool = windows[(windows["source"] == "soundscape") & (windows["split"] == "unlabelled")
                   & np.isclose(windows["shift_s"].astype(float), 0.0)]
    position = pd.Series(pool.index.to_numpy(), index=pool["row_id"].astype(str))
    missing = sorted(set(p_rows["row_id"]) - set(position.index))
    if missing:
        raise StudentStageError(f"{PSEUDO}/rows.csv: rows {missing[:3]} are not unlabelled chunks in {FEATURES}/windows.csv")
    skipped = None
    if p_rows.empty and sources.get("pseudo", 0.0) > 0:  # no unlabelled soundscapes: no pseudo share
        skipped = (f"{PSEUDO} is empty ({read_json(PSEUDO / 'summary.json', 'run the pseudo stage').get('skipped', 'no rows')}): "
                   f"students.{key}.sources.pseudo {sources['pseudo']:g} dropped, the other shares rescaled to sum to 1")
        rest = {k: v for k, v in sources.items() if k != "pseudo" and v > 0}
        sources = {k: v / sum(rest.values()) for k, v in rest.items()}
    p_index = position.reindex(p_rows["row_id"]).to_numpy()
    p_tokens = crossval.load_tokens(arrays, names, p_index)
    kept_counts = {}

    def pseudo_fold(k: int):
        kept, soft = pseudo_labels.transform(pseudo_labels.fold_labels(per_fold, mode, k),
                                             cfg.gate, cfg.floor, cfg.power)
        kept_counts[k] = int(kept.sum())
        return crossval.pick(p_tokens, kept), soft.astype(np.float32)

    def describe(result: crossval.FoldsResult) -> dict:
        metrics = student_metrics(key, student, twin, mconfig, sources,
                                  {**cfg.model_dump(include={"gate", "floor", "power"}), "mode": mode},
                                  p_rows, kept_counts, data, result, labels)
        if skipped:
            metrics["pseudo_skipped"] = skipped
        return metrics

    _, metrics = crossval.cross_validate(
        data, labels, mconfig, training.TrainConfig.from_mapping(params.optim.model_dump()), train.n_folds, train.seed,
        sources.get("soundscape", 0.0), crossval.Destinations(TRAIN_METRICS / key, HEADS / key, OOF / key),
        describe, {"variant": key, "model": mconfig, "blocks": twin["blocks"], "tokens": names, "labels": labels,
                   "n_folds": train.n_folds, "bytes_depend_on": what_bytes_depend_on()},
        desc=f"student@{key} folds", scheduler=params.runtime.scheduler,
        workers=params.runtime.workers, threads=train.threads,
        pseudo=None if p_rows.empty else pseudo_fold, sources=sources)
    return StudentResult(metrics=metrics, seconds=time.perf_counter() - started, curves=str(TRAIN_METRICS / key / "curves"))


def student_metrics(key, student, twin, mconfig, sources, pseudo, p_rows, kept_counts, data, result, labels) -> dict:
    metrics = {"variant": key, "twin": student.twin, "head": mconfig["type"], "blocks": twin["blocks"],
               "sources": sources, "pseudo": pseudo,
               "pseudo_chunks": int(len(p_rows)), "pseudo_chunks_kept_per_fold": [kept_counts[k] for k in sorted(kept_counts)],
               **crossval.summary(data, result, labels)}
    if result.attention:
        metrics["cls_attention"] = crossval.weight_summary(twin["blocks"], result.attention)
    return metrics
