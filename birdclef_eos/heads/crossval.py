"""Cross-validated training of one head: the rows it learns from, the folds, the OOF predictions.

``train_folds`` trains one model per fold (seeded ``seed * 1000 + fold``), keeps each fold's best
epoch, predicts the held-out rows and collects the block weights (scalar mix) or mean CLS
attention (attention heads) the paper compares with the probe. ``cross_validate`` is the whole
sequence a head-training stage runs (train, student, sidecar): the folds trained (one Dask task each
on a cluster), metrics.json and the DVCLive curves, the fold checkpoints and the OOF predictions, each
folder written atomically.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from birdclef_eos.data import folds
from birdclef_eos.heads import models as heads
from birdclef_eos.heads import pseudo as pseudo_labels
from birdclef_eos.heads import training
from birdclef_eos.io.cluster import map_tasks, open_client
from birdclef_eos.io.files import atomic_dir, write_json
from birdclef_eos.report.curves import dvclive_logger


class CrossValError(ValueError):
    pass


@dataclass
class FoldsResult:
    """oof: [n_rows, n_classes] held-out probabilities (every row predicted once); states: one
    state dict per fold; folds: per-fold records (epochs, best epoch, validation AUC, sizes);
    weights / attention: per fold, one value per block (only one of the two is filled)."""
    oof: np.ndarray
    states: list[dict]
    folds: list[dict]
    weights: list[list[float]]
    attention: list[list[float]]


@dataclass
class FoldData:
    """What every fold trains on. rows: focal windows + labelled soundscape chunks (windows.csv rows);
    y: float32 [n_rows, K] targets; fold_of: int [n_rows]; tokens: one float32 tensor [n_rows, C_i]
    per block name; is_soundscape: bool [n_rows] (the rows the OOF is scored on)."""
    rows: pd.DataFrame
    y: np.ndarray
    fold_of: np.ndarray
    tokens: list[torch.Tensor]
    is_soundscape: np.ndarray


def fold_data(windows: pd.DataFrame, arrays: dict, names: list[str], labels: list[str], secondary_weight: float,
              n_folds: int, fold_salt: str) -> FoldData:
    """The training rows, their targets, folds and block tokens (``folds.assign_folds``)."""
    rows = training_rows(windows)
    return FoldData(rows=rows, y=training.targets_matrix(rows, labels, secondary_weight),
                    fold_of=folds.assign_folds(rows, n_folds, fold_salt),
                    tokens=load_tokens(arrays, names, rows.index.to_numpy()),
                    is_soundscape=(rows["source"] == "soundscape").to_numpy())


def oof_frame(data: FoldData, oof: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """row_id + one column per label, for the labelled soundscape chunks (predictions/oof/<name>/oof.csv)."""
    sc = data.rows[data.is_soundscape]
    return pd.concat([sc[["row_id"]].reset_index(drop=True),
                      pd.DataFrame(oof[data.is_soundscape], columns=labels)], axis=1)


def save_folds(folder, states: list[dict], config: dict) -> None:
    """fold_<k>.pt per fold and config.json into ``folder`` (an open atomic_dir)."""
    for k, state in enumerate(states):
        torch.save(state, Path(folder) / f"fold_{k}.pt")
    write_json(Path(folder) / "config.json", config)


@dataclass
class Destinations:
    """Where ``cross_validate`` writes: metrics (metrics.json + curves/), models (fold_<k>.pt +
    config.json), oof (oof.csv). Each folder is replaced atomically."""
    metrics: Path
    models: Path
    oof: Path


def summary(data: FoldData, result: FoldsResult, labels: list[str]) -> dict:
    """The metrics every cross-validated head reports: OOF macro-AUC on the labelled soundscape
    chunks, focal top-1, the row counts and the per-fold records."""
    is_sc = data.is_soundscape
    return {"oof_macro_auc": round_or_none(training.auc_or_nan(data.y[is_sc], result.oof[is_sc])),
            "focal_top1": round(focal_top1(data.rows, result.oof, labels), 6),
            "n_labelled_chunks": int(is_sc.sum()), "n_focal_windows": int((~is_sc).sum()),
            "folds": result.folds}


def cross_validate(data: FoldData, labels: list[str], model_config: dict, config: training.TrainConfig,
                   n_folds: int, seed: int, soundscape_fraction: float, out: Destinations,
                   metrics: Callable[[FoldsResult], dict], head_config: dict, desc: str = "folds", *,
                   scheduler: str | None, workers: int, threads: int | None = None,
                   pseudo: Callable[[int], tuple[list[torch.Tensor], np.ndarray]] | None = None,
                   sources: dict | None = None) -> tuple[FoldsResult, dict]:
    """Train the folds (``train_folds``; as tasks on the cluster ``open_client(scheduler, workers)``
    opens, in-process when that is none: no scheduler and one worker), then write ``metrics(result)`` as metrics.json beside the curves, the fold checkpoints with
    ``head_config`` as config.json, and oof.csv (row_id + one column per label, 6 significant digits).
    Returns (the folds' result, the metrics written)."""
    with atomic_dir(out.metrics) as metrics_dir:
        with open_client(scheduler, workers) as client:  # folds as tasks
            result = train_folds(data.rows, data.tokens, data.y, data.fold_of, model_config, config, n_folds, seed,
                                 soundscape_fraction, dvclive_logger(metrics_dir / "curves"), desc=desc,
                                 pseudo=pseudo, sources=sources, client=client, threads=threads)
        written = metrics(result)
        write_json(metrics_dir / "metrics.json", written)
    with atomic_dir(out.models) as model_dir:
        save_folds(model_dir, result.states, head_config)
    with atomic_dir(out.oof) as oof_dir:
        oof_frame(data, result.oof, labels).to_csv(oof_dir / "oof.csv", index=False, float_format="%.6g")
    return result, written


def training_rows(windows: pd.DataFrame) -> pd.DataFrame:
    """Focal windows and labelled soundscape chunks at shift 0 (shifted copies are for TTA)."""
    focal = windows["source"] == "focal"
    labelled = ((windows["source"] == "soundscape") & (windows["split"] == "labelled")
                & np.isclose(windows["shift_s"].astype(float), 0.0))
    if not focal.any():
        raise CrossValError("windows.csv: no focal rows to train on")
    return windows[focal | labelled]


def load_tokens(arrays: dict, names: list[str], index: np.ndarray) -> list[torch.Tensor]:
    """One float32 tensor [len(index), C_i] per block name."""
    return [torch.from_numpy(np.ascontiguousarray(np.asarray(arrays[n])[index], dtype=np.float32))
            for n in names]


def pick(tokens: list[torch.Tensor], mask: np.ndarray) -> list[torch.Tensor]:
    idx = torch.from_numpy(np.flatnonzero(mask))
    return [t[idx] for t in tokens]


def validation_rows(is_sc: np.ndarray, fold_of: np.ndarray, k: int, y: np.ndarray) -> tuple[np.ndarray, str]:
    """The fold's labelled soundscape chunks when their macro-AUC is defined, else its focal rows."""
    sc = is_sc & (fold_of == k)
    pos = y[sc].sum(axis=0) > 0.5
    if sc.any() and (pos & (pos < sc.sum())).any():
        return sc, "soundscape"
    return ~is_sc & (fold_of == k), "focal"


def round_or_none(x: float, digits: int = 6):
    return round(float(x), digits) if np.isfinite(x) else None


def train_folds(rows: pd.DataFrame, tokens: list[torch.Tensor], y: np.ndarray, fold_of: np.ndarray,
                model_config: dict, config: training.TrainConfig, n_folds: int, seed: int,
                soundscape_fraction: float, logger: Callable[[int], tuple[Callable, Callable]],
                desc: str = "folds", pseudo: Callable[[int], tuple[list[torch.Tensor], np.ndarray]] | None = None,
                sources: dict | None = None, build: Callable[[dict], torch.nn.Module] = heads.build_head,
                trained_folds: list[int] | None = None, client=None, threads: int | None = None) -> FoldsResult:
    """Train ``n_folds`` heads. ``logger(fold)`` returns (log(epoch, record), close()) for curves.

    ``pseudo(fold)``, when given, returns the extra (tokens, soft targets) fold ``fold`` trains on
    (pseudo-labelled unlabelled chunks: in no fold, never validated or predicted out of fold), and
    ``sources`` the batch shares {focal, soundscape, pseudo} that replace ``soundscape_fraction``.
    ``build(model_config)`` makes each fold's model (default: a sequence head; the spectrogram ViT
    passes its own); ``trained_folds`` trains only those folds of the ``n_folds``-fold assignment
    (default: all), leaving the other folds' OOF rows at 0.

    ``client``: a Dask client (birdclef_eos/io/cluster.py `open_client`); each fold is then one
    task on its workers (`map_tasks`: tokens and targets sent to each worker once), run with
    ``threads`` torch threads and deterministic algorithms, as the caller's process runs them: every
    fold reseeds torch from (seed, fold) alone, so the states, OOF and curves are the bytes of the
    sequential run with the same thread count. ``build`` must then be picklable (a module-level
    function, or a partial of one: the ViT's `build_vit_from`). Curves are logged by the caller
    from each fold's history."""
    is_sc = (rows["source"] == "soundscape").to_numpy()
    oof = np.zeros_like(y)
    states, fold_records, weights, attention = [], [], [], []
    ks = list(range(n_folds) if trained_folds is None else trained_folds)
    extra = {k: pseudo(k) for k in ks} if pseudo is not None else {k: None for k in ks}
    # the features and targets go to every worker once; a fold's call carries only its own extras
    done = map_tasks(client, fold_task,
                     [{"k": k, "extra": extra[k], "threads": None if client is None else threads} for k in ks],
                     shared={"tokens": tokens, "y": y, "fold_of": fold_of, "is_sc": is_sc,
                             "model_config": model_config, "config": config, "seed": seed,
                             "soundscape_fraction": soundscape_fraction, "sources": sources, "build": build})
    for k, fold in zip(ks, tqdm(done, total=len(ks), desc=desc)):
        log, close = logger(k)
        for epoch, record in fold["curve"]:
            log(epoch, record)
        close()
        held = fold_of == k
        oof[held] = fold["oof"]
        fold_records.append(fold["record"])
        if fold["weights"] is not None:
            weights.append(fold["weights"])
        if fold["attention"] is not None:
            attention.append(fold["attention"])
        states.append(fold["state"])
    return FoldsResult(oof=oof, states=states, folds=fold_records, weights=weights, attention=attention)


def fold_task(k: int, tokens: list[torch.Tensor], y: np.ndarray, fold_of: np.ndarray, is_sc: np.ndarray,
              model_config: dict, config: training.TrainConfig, seed: int, soundscape_fraction: float,
              extra: tuple[list[torch.Tensor], np.ndarray] | None, sources: dict | None,
              build: Callable[[dict], torch.nn.Module], threads: int | None = None) -> dict:
    """One fold of `train_folds`, in this process or on a worker (``threads`` set: a worker's torch
    threads and deterministic algorithms, as the stage sets them). Returns its held-out
    probabilities ("oof"), its record, block weights or CLS attention (else None), the best state
    and the curve [(epoch, record)]."""
    if threads is not None:
        torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed * 1000 + k)
    model = build(model_config)
    tr = fold_of != k
    if soundscape_fraction == 0:
        tr &= ~is_sc
    val, val_source = validation_rows(is_sc, fold_of, k, y)
    curve: list[tuple[int, dict]] = []
    tr_tokens, tr_y = pick(tokens, tr), y[tr]
    if extra is None:
        draw = training.source_weights(is_sc[tr], soundscape_fraction)
    else:
        p_tokens, p_y = extra
        tr_tokens = [torch.cat([a, b.to(a.dtype)]) for a, b in zip(tr_tokens, p_tokens)]
        tr_y = np.concatenate([tr_y, np.asarray(p_y, dtype=tr_y.dtype)])
        source = np.concatenate([np.where(is_sc[tr], "soundscape", "focal"), np.full(len(p_y), "pseudo")])
        draw = pseudo_labels.mixture_weights(source, sources)
    best, history = training.train_fold(
        model, tr_tokens, torch.from_numpy(tr_y), draw,
        pick(tokens, val), y[val], config, seed=seed * 1000 + k,
        log=lambda epoch, record: curve.append((epoch, dict(record))), desc=f"fold {k}")
    held = fold_of == k
    best_epoch = history[-1]["best_epoch"]
    return {"oof": torch.sigmoid(training.predict_logits(best, pick(tokens, held))).numpy(),
            "record": {"fold": k, "val_source": val_source, "epochs_run": len(history), "best_epoch": best_epoch,
                       "val_macro_auc": round_or_none(history[best_epoch]["val_macro_auc"]),
                       "n_train": int(len(tr_y)), "n_val": int(val.sum())},
            "weights": best.block_weights().detach().tolist() if isinstance(best, heads.ScalarMix) else None,
            "attention": (best.cls_attention(pick(tokens, held)).tolist() if not isinstance(best, heads.ScalarMix)
                          and hasattr(best, "cls_attention") else None),
            "state": best.state_dict(), "curve": curve}


def focal_top1(rows: pd.DataFrame, oof: np.ndarray, labels: list[str]) -> float:
    focal = (rows["source"] == "focal").to_numpy()
    truth = rows.loc[focal, "primary_label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    return float((oof[focal].argmax(axis=1) == truth).mean())


def weight_summary(blocks: list[int], per_fold: list[list[float]]) -> dict:
    per_fold = [[round(w, 6) for w in fold] for fold in per_fold]
    return {"blocks": blocks, "per_fold": per_fold,
            "mean": [round(float(w), 6) for w in np.mean(per_fold, axis=0)]}
