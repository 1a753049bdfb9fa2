"""Stage `sidecar`: the BirdNET sidecar of eos10, an attention head on BirdNET V2.4's final
embedding (one token), and its standalone submission.

Reads data/sidecar_features (the `sidecar_features` stage: in real-data mode BirdNET's own
extraction over the main windows; in the default mode a pointer to data/features/embedding.npy, since
the backbone already is BirdNET) and data/index. Trains in the heads' folds, labels, sampler and early
stopping (`train.n_folds`, `train.fold_salt`, `train.seed`, `train.threads`, `train.secondary_weight`;
birdclef_eos/heads/crossval.py) with its own head and optimiser knobs (`sidecar.head`: the sidecar's
30-s training budget is its own, the ablation's `abl_embedding`, the same head on the same embedding in
the default mode, keeps the heads' `train.optim`). Writes

- models/heads/sidecar/ (fold checkpoints + config.json, as a train variant writes them),
- predictions/oof/sidecar/oof.csv (one row per labelled soundscape chunk),
- build/metrics/sidecar/ (metrics.json + DVCLive curves per fold),
- submissions/sidecar/ (the fold models' mean test probability at the `sidecar.head.tta` shifts, raw:
  the eos10 blend ranks it; manifest.json as the predict stage writes it).

``run`` takes the params as the notebook passes them or as ``Params``, and types them once
(``SidecarHead`` and the heads' ``HeadFolds``: birdclef_eos/heads/config.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch

from birdclef_eos.data import features
from birdclef_eos.data.species import species_labels
from birdclef_eos.heads import crossval, training
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.config import HeadFolds, SidecarHead
from birdclef_eos.heads.inference import predict_shifts
from birdclef_eos.io.files import sha256_tree
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.scoring import postprocess, submission
from stages.paths import (FEATURES, HEADS, HIDDEN, INDEX, OOF, SIDECAR_FEATURES, SIDECAR_METRICS,
                          SUBMISSIONS)

PARAMS = ("sidecar.head", "train.seed", "train.threads", "train.n_folds", "train.fold_salt",
          "train.secondary_weight")
NAME = "sidecar"          # the head's folder, its OOF and its submission
TOKENS = ["embedding"]    # the one array it reads


@dataclass
class SidecarResult:
    """What the sidecar notebook shows: metrics (build/metrics/sidecar/metrics.json: OOF macro-AUC,
    focal top-1, parameters, the features' mode and backbone, per-fold records, train and predict
    seconds), the curves folder and the submission folder."""
    metrics: dict
    curves: str
    submission: str
    seconds: float


@dataclass(frozen=True)
class Params:
    """What the stage reads, typed: `sidecar.head`, the heads' folds, and the unhashed `runtime`."""
    head: SidecarHead
    folds: HeadFolds
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(SidecarHead.model_validate(params["sidecar"]["head"]), HeadFolds.pick(params["train"]),
                   RuntimeParams.model_validate(params["runtime"]))


def run(params: dict | Params, key: str | None = None) -> SidecarResult:
    params = Params.of(params)
    cfg, train = params.head, params.folds
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(train.threads)

    windows, arrays, fmeta = features.load_pointed(SIDECAR_FEATURES, FEATURES, TOKENS)
    labels = species_labels(INDEX)
    data = crossval.fold_data(windows, arrays, TOKENS, labels, train.secondary_weight, train.n_folds,
                              train.fold_salt)
    channels = [int(t.shape[1]) for t in data.tokens]
    mconfig = {"type": cfg.type, "channels": channels, "n_classes": len(labels), **cfg.model.model_dump()}

    shifts = [float(s) for s in cfg.tta]
    predicted = {}

    def describe(result: crossval.FoldsResult) -> dict:
        """The metrics, after the fold models' test predictions (timed apart from the training)."""
        trained = time.perf_counter()
        models = []
        for state in result.states:
            model = heads.build_head(mconfig)
            model.load_state_dict(state)
            models.append(model.eval())
        predicted["rows"], predicted["per_shift"] = predict_shifts(models, windows, arrays, TOKENS, shifts)
        summary = crossval.summary(data, result, labels)
        return {"submission": NAME, "head": cfg.type, "channels": channels, "model": mconfig,
                "features": {k: fmeta.get(k) for k in ("mode", "backbone", "main_backbone", "reuses")},
                "oof_macro_auc": summary["oof_macro_auc"], "focal_top1": summary["focal_top1"],
                "n_params": heads.count_parameters(models[0]), "n_labelled_chunks": summary["n_labelled_chunks"],
                "n_focal_windows": summary["n_focal_windows"], "folds": summary["folds"],
                "train_s": round(trained - started, 1), "predict_s": round(time.perf_counter() - trained, 1)}

    _, metrics = crossval.cross_validate(
        data, labels, mconfig, training.TrainConfig.from_mapping(cfg.optim.model_dump()), train.n_folds, train.seed,
        cfg.soundscape_fraction, crossval.Destinations(SIDECAR_METRICS, HEADS / NAME, OOF / NAME), describe,
        {"variant": NAME, "model": mconfig, "blocks": TOKENS, "tokens": TOKENS, "labels": labels,
         "n_folds": train.n_folds, "features": str(SIDECAR_FEATURES), "bytes_depend_on": what_bytes_depend_on()},
        desc="sidecar folds", scheduler=params.runtime.scheduler,
        workers=params.runtime.workers, threads=train.threads)
    test_rows, per_shift = predicted["rows"], predicted["per_shift"]

    probs = postprocess.average_shifts(per_shift, "prob")
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    sample = HIDDEN / "sample_submission.csv"
    order = submission.order_frame(sample, chunks, labels)
    sub = submission.build(test_rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"submission '{NAME}'")
    source = FEATURES if "reuses" in fmeta else SIDECAR_FEATURES
    inputs = [SIDECAR_FEATURES / "meta.json", source / "windows.csv", source / "embedding.npy",
              INDEX / "species.csv", INDEX / "chunks.csv", HEADS / NAME] + ([sample] if sample.exists() else [])
    manifest = {"model": NAME, "tta": shifts, "entry": {"model": NAME, "tta": list(cfg.tta), "postprocess": False},
                "postprocess": {}, "rows": len(sub), "labels": len(labels), "sha256": sha256_tree(inputs),
                "bytes_depend_on": what_bytes_depend_on()}
    submission.write_folder(SUBMISSIONS / NAME, sub, {"submission": NAME, **manifest})
    return SidecarResult(metrics=metrics, curves=str(SIDECAR_METRICS / "curves"), submission=str(SUBMISSIONS / NAME),
                         seconds=time.perf_counter() - started)
