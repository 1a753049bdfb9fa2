"""Stage `sed`: the chain's distilled SED CNN, from scratch, on the cached spectrograms.

Reads data/spectrograms (focal windows, training soundscape chunks, test chunks at shift 0) and, for
the distillation target, the backbone's final embedding of the same windows (data/features).
`base.sed.folds` = 1 trains one model on every focal window and labelled soundscape chunk (no OOF);
k >= 2 trains k models in the heads' file-grouped folds (birdclef_eos/data/folds.py with
`train.fold_salt`; the heads' own folds when k = train.n_folds), each on every focal window and the
other folds' labelled chunks, and writes the OOF of the labelled chunks. Batches draw
`base.sed.soundscape_fraction` of their rows from labelled soundscape chunks (the chain: 10%).
Scores (0.5 sigmoid(clip) + 0.5 max sigmoid(frame)) are Gaussian-smoothed over each file's chunks
(`base.sed.smooth_sigma`, the chain: 0.65), in probability space.
The folds run in-process or as tasks on the `runtime.workers` / `runtime.scheduler` cluster
(birdclef_eos/chain/sed.py `fold_task`), with the same bytes (docs/scaling.md).
Writes models/chain/sed/ (fold_<k>.pt, config.json), predictions/chain/sed/ (test.csv; oof.csv
when folds >= 2) and build/metrics/sed/ (metrics.json + DVCLive curves per fold).

``run`` takes the params as the notebook passes them or as ``Params``, types `base.sed` once
(``SEDParams``, birdclef_eos/chain/config.py) and fills the network's and the training's dataclasses
from it (``birdclef_eos.knobs.fill``: the knobs of the same name, plus the shapes derived here).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from birdclef_eos.chain import sed as sedlib
from birdclef_eos.chain.config import SEDParams
from birdclef_eos.data.species import species_labels
from birdclef_eos.report.curves import dvclive_logger
from birdclef_eos.data import features, folds, spectrograms
from birdclef_eos.heads.crossval import round_or_none
from birdclef_eos.heads.training import auc_or_nan, source_weights, targets_matrix
from birdclef_eos.io.cluster import map_tasks, open_client
from birdclef_eos.io.files import atomic_dir, write_json
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.knobs import fill
from birdclef_eos.scoring.postprocess import gaussian_smooth
from stages.paths import CHAIN_MODELS, CHAIN_PREDICTIONS, FEATURES, INDEX, SED_METRICS, SPECTROGRAMS

PARAMS = ("base.sed", "train.fold_salt")
NAME = "sed"
KEY = ["source", "file_id", "start_s", "shift_s"]


class SEDStageError(ValueError):
    pass


@dataclass
class SEDResult:
    """What the sed notebook shows: metrics (build/metrics/sed/metrics.json: parameter count, OOF when
    folds >= 2, per-fold records, samples/s) and the stage's wall time."""
    metrics: dict
    seconds: float


def feature_rows(spec_windows: pd.DataFrame, feat_windows: pd.DataFrame) -> np.ndarray:
    """Feature-store row of every spectrogram row (same window: source, file, start, shift)."""
    f = feat_windows[KEY].astype(str).assign(_row=np.arange(len(feat_windows)))
    m = spec_windows[KEY].astype(str).merge(f, on=KEY, how="left")
    if m["_row"].isna().any():
        bad = spec_windows.iloc[int(np.flatnonzero(m["_row"].isna())[0])]
        raise SEDStageError(f"{SPECTROGRAMS}/windows.csv: window {bad['file_id']} at {bad['start_s']} s is not in "
                            f"{FEATURES}/windows.csv (re-run the spectrogram stage)")
    return m["_row"].to_numpy(dtype=np.int64)


def smoothed(P: np.ndarray, rows: pd.DataFrame, sigma: float) -> np.ndarray:
    return gaussian_smooth(P, rows["file_id"].to_numpy(), rows["chunk"].to_numpy(), sigma, mode="nearest",
                           space="prob", truncate=4.0)


def frame(rows: pd.DataFrame, P: np.ndarray, labels: list[str]) -> pd.DataFrame:
    return pd.concat([rows[["row_id"]].reset_index(drop=True), pd.DataFrame(P, columns=labels)], axis=1)


@dataclass(frozen=True)
class Params:
    """What the stage reads: `base.sed` (typed), `train.fold_salt` and the unhashed `runtime`."""
    sed: SEDParams
    fold_salt: str
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(SEDParams.model_validate(params["base"]["sed"]), params["train"]["fold_salt"],
                   RuntimeParams.model_validate(params["runtime"]))


def run(params: dict | Params, key: str | None = None) -> SEDResult:
    started = time.perf_counter()
    params = Params.of(params)
    p = params.sed
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(p.threads)
    labels = species_labels(INDEX)
    store = spectrograms.load(SPECTROGRAMS)
    w = store.windows
    feat_windows, arrays, _ = features.load(FEATURES, names=["embedding"])
    emb = np.asarray(arrays["embedding"], dtype=np.float32)[feature_rows(w, feat_windows)]
    focal = (w["source"] == "focal").to_numpy()
    labelled = ((w["source"] == "soundscape") & (w["split"] == "labelled")).to_numpy()
    test = ((w["source"] == "test") & np.isclose(w["shift_s"].astype(float), 0.0)).to_numpy()
    if not test.any() or not labelled.any():
        raise SEDStageError(f"{SPECTROGRAMS}/windows.csv: needs labelled soundscape chunks and test chunks at shift 0")
    y = targets_matrix(w, labels, p.secondary_weight).astype(np.float32)
    fold_of = folds.assign_folds(w, p.folds, params.fold_salt) if p.folds >= 2 else None
    config = sedlib.SEDConfig(**fill(sedlib.SEDConfig, p, {
        "n_classes": len(labels), "d_distill": emb.shape[1] if p.distill_weight > 0 else 0,
        "widths": list(p.widths), "depths": [p.depth] * len(p.widths),
        "strides": [2 if i < p.downsample else 1 for i in range(len(p.widths))]}))
    settings = sedlib.SEDTrainSettings(**fill(sedlib.SEDTrainSettings, p, {}))
    test_rows = w[test]
    test_idx = np.flatnonzero(test)
    test_p = np.zeros((len(test_idx), len(labels)))
    oof = np.zeros((int(labelled.sum()), len(labels))) if fold_of is not None else None
    lab_idx = np.flatnonzero(labelled)
    records, states = [], []
    n_models = max(1, p.folds)
    train_s = 0.0
    calls = []
    for k in range(n_models):
        if fold_of is None:
            train_mask, val_idx = focal | labelled, None
        else:
            train_mask = focal | (labelled & (fold_of != k))
            val_idx = lab_idx[fold_of[lab_idx] == k]
        calls.append({"index": np.flatnonzero(train_mask), "val_index": val_idx, "seed": p.seed * 1000 + k,
                      "threads": p.threads})
    runtime = params.runtime
    with atomic_dir(SED_METRICS) as metrics_dir:
        open_fold = dvclive_logger(metrics_dir / "curves")
        # folds as tasks on a cluster (runtime.workers / runtime.scheduler), else here: the same bytes.
        # A task gets the path of mels.npy (memory-mapped there), not the log-mels; targets, flags and
        # distillation targets go to every worker once; a fold's call carries its row indices and seed
        with open_client(runtime.scheduler, runtime.workers) as client:
            mels = store.mels if client is None else str((SPECTROGRAMS / "mels.npy").resolve())
            done = map_tasks(client, sedlib.fold_task, calls,
                             shared={"config": config, "settings": settings, "mels": mels, "y": y,
                                     "is_soundscape": labelled, "target_emb": emb, "test_index": test_idx,
                                     "sampler_weights": source_weights, "auc_fn": auc_or_nan})
            for k, call, fold in zip(range(n_models), calls, tqdm(done, total=n_models, desc="sed folds")):
                log, close = open_fold(k)
                for epoch, record in fold["curve"]:
                    log(epoch, record)
                close()
                train_s += fold["train_s"]
                history = fold["history"]
                test_p += fold["test"] / n_models
                if call["val_index"] is not None:
                    oof[np.searchsorted(lab_idx, call["val_index"])] = fold["oof"]
                states.append(fold["state"])
                records.append({"fold": k, "n_train_windows": int(len(call["index"])), "epochs_run": len(history),
                                "final_loss": round(history[-1]["loss"], 6),
                                "val_macro_auc": None if call["val_index"] is None
                                else round_or_none(history[-1]["val_macro_auc"])})
        lab_rows = w[labelled]
        if oof is not None:
            oof = smoothed(oof, lab_rows, p.smooth_sigma)
        test_p = smoothed(test_p, test_rows, p.smooth_sigma)
        samples = n_models * settings.epochs * settings.samples_per_epoch
        metrics = {"model": NAME, "n_params": sedlib.n_params(sedlib.SED(config)), "config": config.as_dict(),
                   "input": [store.spec.n_mels, int(store.mels.shape[2])], "folds": p.folds,
                   "oof_macro_auc": None if oof is None else round_or_none(auc_or_nan(y[labelled], oof)),
                   "train_samples_per_s": round(samples / max(train_s, 1e-9), 1), "fold_records": records}
        write_json(metrics_dir / "metrics.json", metrics)
    with atomic_dir(CHAIN_MODELS / NAME) as out:
        for k, state in enumerate(states):
            torch.save(state, out / f"fold_{k}.pt")
        write_json(out / "config.json", {"model": NAME, "config": config.as_dict(), "labels": labels,
                                         "spec": store.spec.as_dict(), "folds": p.folds,
                                         "bytes_depend_on": what_bytes_depend_on()})
    with atomic_dir(CHAIN_PREDICTIONS / NAME) as out:
        frame(test_rows, test_p, labels).to_csv(out / "test.csv", index=False, float_format="%.6g")
        if oof is not None:
            frame(lab_rows, oof, labels).to_csv(out / "oof.csv", index=False, float_format="%.6g")
    return SEDResult(metrics=metrics, seconds=time.perf_counter() - started)
