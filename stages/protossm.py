"""Stage `protossm`: the baseline chain's ProtoSSM in the heads' folds, with an OOF.

Reads the backbone's final embedding (`base.protossm.inputs`: feature-store arrays concatenated per
chunk) of every labelled soundscape chunk and every test chunk (data/features; the labelled chunks at
other shifts from data/features_labelled, the `extract_labelled` stage), the sites and hours of the
files, and the competition logits when `base.protossm.mix_logits` is on. Trains one model per fold of
`train.n_folds` / `train.fold_salt` (the heads' file-grouped folds, birdclef_eos/data/folds.py) on the
other folds' files, on shift-0 chunks as before; each labelled chunk is predicted once by the model
that did not see its file (the OOF), at every shift of every `base.protossm.tta_candidates` set;
test chunks get the mean of the fold models' probabilities.
TTA (the test shifts averaged, probabilities): `base.protossm.tta: oof` takes the candidate set whose
OOF (its shifts' probabilities averaged) has the best macro-AUC, a tie going to fewer shifts
(birdclef_eos/scoring/oof.py `choose_shift_set`); a list fixes the set. Either way every candidate's
OOF macro-AUC is in the metrics, and the OOF written and the test mean are at the set applied, so the
base's OOF is read at the windows it submits with. Training never sees a shifted window, so the choice
costs no retraining.
Writes models/chain/protossm/ (fold_<k>.pt, config.json with the `tta` applied), predictions/oof/protossm/oof.csv
(and candidate_<i>.csv, one per scored set, listed with its shifts in candidates.json),
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
from birdclef_eos.data.species import species_table
from birdclef_eos.report.curves import dvclive_logger
from birdclef_eos.chain.sequences import file_sequences
from birdclef_eos.data import features, folds
from birdclef_eos.data.plans import read_index_table
from birdclef_eos.heads.crossval import round_or_none
from birdclef_eos.heads.training import auc_or_nan, targets_matrix
from birdclef_eos.io.cluster import map_tasks, open_client
from birdclef_eos.io.files import atomic_dir, write_json
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.knobs import fill
from birdclef_eos.scoring.oof import choose_shift_set
from stages.paths import CHAIN_MODELS, CHAIN_PREDICTIONS, FEATURES, FEATURES_LABELLED, INDEX, OOF, PROTOSSM_METRICS

PARAMS = ("base.protossm", "train.n_folds", "train.fold_salt")
NAME = "protossm"


class ProtoSSMStageError(ValueError):
    pass


@dataclass(frozen=True)
class Params:
    """What the stage reads, typed: `base.protossm`, the heads' folds (`train.n_folds`,
    `train.fold_salt`) and the unhashed `runtime` (its cluster knobs: `scheduler`, `workers`)."""
    protossm: ProtoSSMParams
    n_folds: int
    fold_salt: str
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(ProtoSSMParams.model_validate(params["base"]["protossm"]), params["train"]["n_folds"],
                   params["train"]["fold_salt"], RuntimeParams.model_validate(params["runtime"]))


@dataclass
class ProtoSSMResult:
    """What the protossm notebook shows: metrics (build/metrics/protossm/metrics.json: OOF macro-AUC,
    parameter count, per-fold records) and the stage's wall time."""
    metrics: dict
    seconds: float


def chunk_rows(windows: pd.DataFrame, source: str, split: str, shift: float, where=FEATURES,
               fix: str = "extract.tta_shifts") -> pd.DataFrame:
    rows = windows[(windows["source"] == source) & (windows["split"] == split)
                   & np.isclose(windows["shift_s"].astype(float), shift)]
    if rows.empty:
        raise ProtoSSMStageError(f"{where}/windows.csv: no {split} chunks at shift {shift} (add it to {fix})")
    return rows


def shift_sets(p: ProtoSSMParams) -> tuple[list[list[float]], list[float] | None]:
    """(the sets scored on the OOF: every `tta_candidates` set, then a fixed `tta` list when it is
    not among them; the fixed list, or None for `tta: oof`)."""
    sets = [[float(s) for s in c] for c in p.tta_candidates]
    fixed = None if p.tta == "oof" else [float(s) for s in p.tta]
    if fixed is not None and sorted(fixed) not in [sorted(c) for c in sets]:
        sets.append(fixed)
    return sets, fixed


def shifted_sequences(shifts: list[float], data: dict, names: list[str], mix_logits: bool, slots: dict,
                      labels: list[str]) -> dict[float, dict]:
    """The labelled files of ``data`` at each non-zero shift, from data/features_labelled, in the same
    file and chunk order (an error names the store when a shift or a file is missing)."""
    if not shifts:
        return {}
    windows, arrays, _ = features.load(FEATURES_LABELLED, names=names + (["logits"] if mix_logits else []))
    inputs = {n: arrays[n] for n in names}
    out = {}
    for s in shifts:
        rows = chunk_rows(windows, "soundscape", "labelled", s, FEATURES_LABELLED, "extract.labelled_shifts")
        seq = file_sequences(rows, inputs, arrays.get("logits"), slots, labels, f"{FEATURES_LABELLED}/windows.csv")
        if seq["files"] != data["files"] or not np.array_equal(seq["row_ids"], data["row_ids"]):
            raise ProtoSSMStageError(f"{FEATURES_LABELLED}/windows.csv: the labelled chunks at shift {s} are not those "
                                     f"of {FEATURES} at shift 0 (re-run extract_labelled)")
        out[s] = seq
    return out


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
    species = species_table(INDEX)
    labels = species["primary_label"].astype(str).tolist()
    windows, inputs, meta = features.load(FEATURES, names=list(p.inputs))
    logits = features.load(FEATURES, names=["logits"])[1]["logits"] if p.mix_logits else None
    sites = read_index_table(INDEX, "soundscapes")["site"].astype(str)
    slots = pssm.site_slots(sites, p.n_sites)

    train_rows = chunk_rows(windows, "soundscape", "labelled", 0.0)
    data = sequences(train_rows, inputs, logits, slots, labels)
    file_fold = folds.assign_folds(train_rows, n_folds, salt)
    fold_of = np.array([dict(zip(train_rows["file_id"], file_fold))[f] for f in data["files"]])
    sets, fixed = shift_sets(p)
    test_shifts = list(dict.fromkeys(s for c in sets for s in c))
    moved = shifted_sequences([s for s in test_shifts if s != 0.0], data, list(p.inputs), p.mix_logits,
                              slots, labels)
    test = [sequences(chunk_rows(windows, "test", "test", s), inputs, logits, slots, labels) for s in test_shifts]
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
    oof_at = {s: np.zeros_like(data["y"]) for s in moved}
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
        with open_client(params.runtime.scheduler, params.runtime.workers) as client:
            done = map_tasks(client, pssm.fold_task,
                             [{"val": fold_of == k, "seed": p.seed * 1000 + k, "threads": p.threads}
                              for k in range(n_folds)],
                             shared={"config": config, "settings": settings, "data": data, "auc_fn": auc_fn,
                                     "focal": focal, "test": test, "shifted": list(moved.values())})
            for k, fold in zip(range(n_folds), tqdm(done, total=n_folds, desc="protossm folds")):
                val = fold_of == k
                log, close = open_fold(k)
                for epoch, record in fold["curve"]:
                    log(epoch, record)
                close()
                history = fold["history"]
                oof[val] = fold["oof"]
                for acc, prob in zip(oof_at.values(), fold["oof_shifted"]):
                    acc[val] = prob
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
        oof_at[0.0] = oof
        scored = [(c, auc_fn(data["y"], np.mean([oof_at[s] for s in c], axis=0))) for c in sets]
        applied = fixed if fixed is not None else sets[choose_shift_set(scored)]
        chosen_oof = np.mean([oof_at[s] for s in applied], axis=0)
        metrics = {"model": NAME, "inputs": list(p.inputs), "d_input": config.d_input,
                   "n_params": pssm.n_params(pssm.ProtoSSM(config)),
                   "oof_macro_auc": round_or_none(auc_fn(data["y"], chosen_oof)), "n_files": len(data["files"]),
                   "n_labelled_chunks": int(oof.shape[0] * oof.shape[1]), "n_sites": len(set(sites)),
                   "site_slots": p.n_sites, "sites_sharing_slots": max(0, len(set(sites)) - p.n_sites),
                   "mix_logits": p.mix_logits, "tta": applied,
                   "tta_choice": {"rule": ("the candidate with the best OOF macro-AUC; a tie: fewer shifts"
                                           if fixed is None else "fixed by base.protossm.tta"),
                                  "candidates": [{"shifts": c, "oof_macro_auc": round_or_none(a)} for c, a in scored]},
                   "focal_sequences": p.focal_sequences, "n_focal_windows": 0 if focal is None else len(focal["y"]),
                   "folds": records}
        write_json(metrics_dir / "metrics.json", metrics)
    with atomic_dir(CHAIN_MODELS / NAME) as out:
        for k, state in enumerate(states):
            torch.save(state, out / f"fold_{k}.pt")
        write_json(out / "config.json", {"model": NAME, "config": config.as_dict(), "inputs": list(p.inputs),
                                         "labels": labels, "site_slots": slots, "n_folds": n_folds, "tta": applied,
                                         "fold_salt": salt, "bytes_depend_on": what_bytes_depend_on()})
    with atomic_dir(OOF / NAME) as out:
        frame(data["row_ids"], chosen_oof, labels).to_csv(out / "oof.csv", index=False, float_format="%.6g")
        # every candidate's OOF, so that the base stage scores each after its own post-processing too
        for i, (c, _) in enumerate(scored):
            frame(data["row_ids"], np.mean([oof_at[s] for s in c], axis=0), labels).to_csv(
                out / f"candidate_{i}.csv", index=False, float_format="%.6g")
        write_json(out / "candidates.json", [{"shifts": c, "file": f"candidate_{i}.csv"} for i, (c, _) in enumerate(scored)])
    with atomic_dir(CHAIN_PREDICTIONS / NAME) as out:
        mean = np.mean([test_probs[test_shifts.index(s)] for s in applied], axis=0)
        frame(test[0]["row_ids"], mean, labels).to_csv(out / "test.csv", index=False, float_format="%.6g")
    return ProtoSSMResult(metrics=metrics, seconds=time.perf_counter() - started)
