"""Stage `protossm`: the baseline chain's ProtoSSM in the heads' folds, with an OOF.

Reads the backbone's final embedding (`base.protossm.inputs`: feature-store arrays concatenated per
chunk) of every labelled soundscape chunk and every test chunk at the `base.protossm.tta` shifts
(data/features), the sites and hours of the files, and the competition logits when
`base.protossm.mix_logits` is on. Trains one model per fold of `train.n_folds` / `train.fold_salt`
(the heads' file-grouped folds, birdclef_eos/data/folds.py) on the other folds' files; each labelled
chunk is predicted once by the model that did not see its file (the OOF); test chunks get the mean
of the fold models' probabilities (and of the TTA shifts).
Writes models/chain/protossm/ (fold_<k>.pt, config.json), predictions/oof/protossm/oof.csv,
predictions/chain/protossm/test.csv (row_id + one column per label, test chunks) and
build/metrics/protossm/ (metrics.json + DVCLive curves per fold).

``run`` takes the params as the notebook passes them (papermill hands it JSON) or as ``Params``; it
types them once (``Params.of``: `base.protossm` through its model, birdclef_eos/chain/config.py) and
reads attributes from then on. The network's and the training's dataclasses are filled from the
model field by field (``birdclef_eos.knobs.fill``), so no knob is mapped by hand here.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from birdclef_eos.chain import protossm as pssm
from birdclef_eos.chain.config import ProtoSSMParams
from birdclef_eos.report.curves import dvclive_logger
from birdclef_eos.chain.sequences import file_sequences
from birdclef_eos.data import features, folds
from birdclef_eos.data.plans import read_index_table
from birdclef_eos.heads.crossval import round_or_none
from birdclef_eos.heads.training import auc_or_nan, targets_matrix
from birdclef_eos.io.cluster import map_tasks, open_client
from birdclef_eos.io.files import atomic_dir, write_json
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.knobs import fill
from stages.paths import CHAIN_MODELS, CHAIN_PREDICTIONS, FEATURES, INDEX, OOF, PROTOSSM_METRICS

PARAMS = ("base.protossm", "train.n_folds", "train.fold_salt")
NAME = "protossm"


class ProtoSSMStageError(ValueError):
    pass


@dataclass(frozen=True)
class Params:
    """What the stage reads, typed: `base.protossm`, the heads' folds (`train.n_folds`,
    `train.fold_salt`) and the unhashed cluster knobs (`runtime.scheduler`, `runtime.workers`)."""
    protossm: ProtoSSMParams
    n_folds: int
    fold_salt: str
    scheduler: str | None = None
    workers: int = 1

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        runtime = params.get("runtime", {})
        return cls(ProtoSSMParams.model_validate(params["base"]["protossm"]), params["train"]["n_folds"],
                   params["train"]["fold_salt"], runtime.get("scheduler"), runtime.get("workers", 1))


@dataclass
class ProtoSSMResult:
    """What the protossm notebook shows: metrics (build/metrics/protossm/metrics.json: OOF macro-AUC,
    parameter count, per-fold records) and the stage's wall time."""
    metrics: dict
    seconds: float


def chunk_rows(windows: pd.DataFrame, source: str, split: str, shift: float) -> pd.DataFrame:
    rows = windows[(windows["source"] == source) & (windows["split"] == split)
                   & np.isclose(windows["shift_s"].astype(float), shift)]
    if rows.empty:
        raise ProtoSSMStageError(f"{FEATURES}/windows.csv: no {split} chunks at shift {shift}")
    return rows


def sequences(rows: pd.DataFrame, inputs: dict, logits, slots: dict, labels: list[str]) -> dict:
    """{"files", "row_ids" [F, T], "emb" [F, T, E], "site" [F], "hour" [F], "y" [F, T, K], "logits"}."""
    return file_sequences(rows, inputs, logits, slots, labels, f"{FEATURES}/windows.csv")


def frame(row_ids: np.ndarray, probs: np.ndarray, labels: list[str]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"row_id": row_ids.ravel()}),
                      pd.DataFrame(probs.reshape(-1, len(labels)), columns=labels)], axis=1)


def run(params: dict | Params, key: str | None = None) -> ProtoSSMResult:
    started = time.perf_counter()
    params = Params.of(params)
    p = params.protossm
    n_folds, salt = params.n_folds, params.fold_salt
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(p.threads)
    species = read_index_table(INDEX, "species").sort_values("label_idx")
    labels = species["primary_label"].astype(str).tolist()
    windows, inputs, meta = features.load(FEATURES, names=list(p.inputs))
    logits = features.load(FEATURES, names=["logits"])[1]["logits"] if p.mix_logits else None
    sites = read_index_table(INDEX, "soundscapes")["site"].astype(str)
    slots = pssm.site_slots(sites, p.n_sites)

    train_rows = chunk_rows(windows, "soundscape", "labelled", 0.0)
    data = sequences(train_rows, inputs, logits, slots, labels)
    file_fold = folds.assign_folds(train_rows, n_folds, salt)
    fold_of = np.array([dict(zip(train_rows["file_id"], file_fold))[f] for f in data["files"]])
    test = [sequences(chunk_rows(windows, "test", "test", s), inputs, logits, slots, labels) for s in p.tta]
    config = pssm.ProtoSSMConfig(**fill(pssm.ProtoSSMConfig, p, {
        "d_input": data["emb"].shape[-1], "n_classes": len(labels), "n_windows": data["emb"].shape[1],
        "unknown_meta": p.focal_sequences > 0}))
    settings = pssm.TrainSettings(**fill(pssm.TrainSettings, p, {}))
    focal = None
    if p.focal_sequences > 0:
        focal_rows = windows[windows["source"] == "focal"]
        if focal_rows.empty:
            raise ProtoSSMStageError(f"{FEATURES}/windows.csv: base.protossm.focal_sequences > 0 but no focal windows")
        fidx = focal_rows.index.to_numpy()
        focal = {"emb": torch.as_tensor(np.concatenate([np.asarray(a[fidx], dtype=np.float32) for a in inputs.values()], axis=1)),
                 "y": torch.as_tensor(targets_matrix(focal_rows, labels, p.focal_secondary_weight).astype(np.float32))}

    auc_fn = functools.partial(pssm.flat_auc, auc_or_nan)
    oof = np.zeros_like(data["y"])
    test_probs = [np.zeros_like(t["y"]) for t in test]
    records, states = [], []
    with atomic_dir(PROTOSSM_METRICS) as metrics_dir:
        open_fold = dvclive_logger(metrics_dir / "curves")
        for k in range(n_folds):
            if not (fold_of == k).any():
                raise ProtoSSMStageError(f"fold {k} has no labelled soundscape file (n_folds {n_folds} too many)")
        # folds as tasks on a cluster (runtime.workers / runtime.scheduler), else here: the same bytes
        # the sequences, focal windows and test sequences go to every worker once; a fold's call
        # carries its mask and seed
        with open_client(params.scheduler, params.workers) as client:
            done = map_tasks(client, pssm.fold_task,
                             [{"val": fold_of == k, "seed": p.seed * 1000 + k, "threads": p.threads}
                              for k in range(n_folds)],
                             shared={"config": config, "settings": settings, "data": data, "auc_fn": auc_fn,
                                     "focal": focal, "test": test})
            for k, fold in zip(range(n_folds), tqdm(done, total=n_folds, desc="protossm folds")):
                val = fold_of == k
                log, close = open_fold(k)
                for epoch, record in fold["curve"]:
                    log(epoch, record)
                close()
                history = fold["history"]
                oof[val] = fold["oof"]
                for acc, prob in zip(test_probs, fold["test"]):
                    acc += prob / n_folds
                states.append(fold["state"])
                last = history[-1]
                records.append({"fold": k, "n_train_files": int((~val).sum()), "n_val_files": int(val.sum()),
                                "epochs_run": len(history), "best_epoch": last["best_epoch"],
                                "best_val_macro_auc": round_or_none(max(h["val_macro_auc"] for h in history)),
                                "swa_epochs": last.get("swa_epochs", 0),
                                "swa_val_macro_auc": (round(last["swa_val_macro_auc"], 6)
                                                      if np.isfinite(last.get("swa_val_macro_auc", float("nan"))) else None),
                                "val_macro_auc": round_or_none(auc_fn(data["y"][val], oof[val]))})
        metrics = {"model": NAME, "inputs": list(p.inputs), "d_input": config.d_input,
                   "n_params": pssm.n_params(pssm.ProtoSSM(config)),
                   "oof_macro_auc": round_or_none(auc_fn(data["y"], oof)), "n_files": len(data["files"]),
                   "n_labelled_chunks": int(oof.shape[0] * oof.shape[1]), "n_sites": len(set(sites)),
                   "site_slots": p.n_sites, "sites_sharing_slots": max(0, len(set(sites)) - p.n_sites),
                   "mix_logits": p.mix_logits, "tta": list(p.tta),
                   "focal_sequences": p.focal_sequences, "n_focal_windows": 0 if focal is None else len(focal["y"]),
                   "folds": records}
        write_json(metrics_dir / "metrics.json", metrics)
    with atomic_dir(CHAIN_MODELS / NAME) as out:
        for k, state in enumerate(states):
            torch.save(state, out / f"fold_{k}.pt")
        write_json(out / "config.json", {"model": NAME, "config": config.as_dict(), "inputs": list(p.inputs),
                                         "labels": labels, "site_slots": slots, "n_folds": n_folds,
                                         "fold_salt": salt, "bytes_depend_on": what_bytes_depend_on()})
    with atomic_dir(OOF / NAME) as out:
        frame(data["row_ids"], oof, labels).to_csv(out / "oof.csv", index=False, float_format="%.6g")
    with atomic_dir(CHAIN_PREDICTIONS / NAME) as out:
        mean = np.mean(test_probs, axis=0)
        frame(test[0]["row_ids"], mean, labels).to_csv(out / "test.csv", index=False, float_format="%.6g")
    return ProtoSSMResult(metrics=metrics, seconds=time.perf_counter() - started)
