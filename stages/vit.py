"""Stage `vit@<size>`: a small spectrogram ViT at one input size (paper section 7.3, the
DINOv2 ViT-B/14 branch of eos12 at 196 px and eos13 at 224 px).

Reads the log-mel store of the `spectrogram` stage (data/spectrograms/) and data/index/species.csv.
Trains `vit.folds` folds (the first ones) of the heads' fold assignment (`train.n_folds`,
`train.fold_salt`, birdclef_eos/data/folds.py) with the heads' sampler, mixup, labels and early
stopping (birdclef_eos/heads/training.py through crossval.train_folds); in-process, or each fold a
task on the `runtime.workers` / `runtime.scheduler` cluster with the same bytes (docs/scaling.md).
Each size writes only its own files, so running one size can never touch another's:

- models/vit/<size>/fold_<k>.pt and config.json (model, folds, labels, the mel settings, init report),
- predictions/oof/vit<size>/oof.csv (the held-out labelled soundscape chunks of the trained folds),
- build/metrics/vit/<size>/metrics.json and DVCLive curves (curves/fold_<k>/),
- submissions/vit<size>/ (submission.csv, the fold models' mean test probabilities at the `vit.tta`
  shifts, no post-processing: the ViT's test predictions; manifest.json as the predict stage writes it).

`vit.sizes.<size>.init` loads a user-supplied ViT state dict (timm names; e.g. DINOv2 weights of
the same width) into every fold before training; a position embedding made for another input size
stops the stage with both shapes and the file named, unless `resize_pos_embed` is true.

``run`` takes the params as the notebook passes them or as ``Params``, and types `vit` once
(``VitParams``, birdclef_eos/heads/config.py).
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from birdclef_eos.data import folds, spectrograms
from birdclef_eos.data.species import species_labels
from birdclef_eos.heads import crossval, training
from birdclef_eos.heads import vit
from birdclef_eos.heads.config import VitParams, VitSize
from birdclef_eos.heads.inference import predict_shifts
from birdclef_eos.io.cluster import open_client
from birdclef_eos.io.files import atomic_dir, sha256_file, sha256_tree, write_json
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.report.curves import dvclive_logger
from birdclef_eos.scoring import submission
from stages.paths import HIDDEN, INDEX, OOF, SPECTROGRAMS, SUBMISSIONS, VIT_METRICS, VIT_MODELS

PARAMS = ("vit.model", "vit.optim", "vit.folds", "vit.soundscape_fraction", "vit.tta", "vit.seed", "vit.threads",
          "vit.sizes.{key}", "train.n_folds", "train.fold_salt", "train.secondary_weight")
PAPER_STANDALONE_PUBLIC = 0.811   # "DINOv2 224px LB ~ 0.811" (section 7)


class VitStageError(ValueError):
    pass


@dataclass
class VitResult:
    """What the vit notebook shows: metrics (build/metrics/vit/<size>/metrics.json: OOF macro-AUC,
    focal top-1, parameters, position-embedding shape, per-fold records, init report),
    the curves folder and the submission folder."""
    metrics: dict
    curves: str
    submission: str
    seconds: float


def submission_name(key: str) -> str:
    return f"vit{key}"


@dataclass(frozen=True)
class Params:
    """What the stage reads: `vit` (typed, with the one size it trains), the heads' folds and
    secondary-label target, and the unhashed `runtime`."""
    vit: VitParams
    n_folds: int
    fold_salt: str
    secondary_weight: float
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        train = params["train"]
        return cls(VitParams.model_validate(params["vit"]), train["n_folds"], train["fold_salt"],
                   train["secondary_weight"], RuntimeParams.model_validate(params["runtime"]))


def model_config(cfg: VitParams, size: VitSize, n_classes: int) -> dict:
    return {"n_classes": n_classes, "image": size.image, **cfg.model.model_dump()}


def builder(mconfig: dict, size: VitSize, key: str):
    """(build(config) for crossval.train_folds, the init report or None). The init checkpoint is
    checked here, once, before any training: a wrong size fails in a second, not after a fold.
    ``build`` is picklable (a partial of a module-level function): a cluster task carries it."""
    init, resize = size.init, size.resize_pos_embed
    report = None
    if init:
        try:
            report = vit.load_init(vit.build_vit(mconfig), init, resize=resize)
        except vit.ViTError as e:
            raise VitStageError(f"vit.sizes.{key}.init: {e}") from e
    return functools.partial(vit.build_vit_from, init=init or None, resize=resize), report


def run(params: dict | Params, key: str | None = None) -> VitResult:
    params = Params.of(params)
    cfg = params.vit
    if key not in cfg.sizes:
        raise VitStageError(f"params.yaml vit.sizes has no entry '{key}'; known: {sorted(cfg.sizes)}")
    size = cfg.sizes[key]
    if cfg.folds > params.n_folds:
        raise VitStageError(f"vit.folds = {cfg.folds} exceeds train.n_folds = {params.n_folds}")
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(cfg.threads)

    store = spectrograms.load(SPECTROGRAMS)
    windows = store.windows.reset_index(drop=True)
    labels = species_labels(INDEX)
    rows = crossval.training_rows(windows)
    y = training.targets_matrix(rows, labels, params.secondary_weight)
    fold_of = folds.assign_folds(rows, params.n_folds, params.fold_salt)
    tokens = [vit.stack_mels(store.mels, rows.index.to_numpy())]
    mconfig = model_config(cfg, size, len(labels))
    build, init_report = builder(mconfig, size, key)
    trained = list(range(cfg.folds))

    runtime = params.runtime
    with atomic_dir(VIT_METRICS / key) as metrics_dir:
        with open_client(runtime.scheduler, runtime.workers) as client:  # folds as tasks
            result = crossval.train_folds(rows, tokens, y, fold_of, mconfig, training.TrainConfig.from_mapping(cfg.optim.model_dump()),
                                          params.n_folds, cfg.seed, cfg.soundscape_fraction,
                                          dvclive_logger(metrics_dir / "curves"), desc=f"vit@{key} folds", build=build,
                                          trained_folds=trained, client=client, threads=cfg.threads)
        is_sc = (rows["source"] == "soundscape").to_numpy()
        held = np.isin(fold_of, trained)
        scored = is_sc & held
        focal = ~is_sc & held
        model = vit.build_vit(mconfig)
        metrics = {
            "size": key, "image": size.image, "patch": mconfig["patch"], "folds_trained": trained,
            "n_folds": params.n_folds, "model": mconfig, "n_params": vit.count_parameters(model),
            "pos_embed_shape": list(model.pos_embed.shape), "mel_shape": list(store.mels.shape[1:]),
            "init": size.init, "init_report": init_report,
            "oof_macro_auc": crossval.round_or_none(training.auc_or_nan(y[scored], result.oof[scored])),
            "focal_top1": round(crossval.focal_top1(rows[focal], result.oof[focal], labels), 6) if focal.any() else None,
            "n_oof_chunks": int(scored.sum()), "n_labelled_chunks": int(is_sc.sum()),
            "paper_standalone_public": PAPER_STANDALONE_PUBLIC, "folds": result.folds,
        }
        models = []
        for state in result.states:
            m = vit.build_vit(mconfig)
            m.load_state_dict(state)
            models.append(m.eval())
        test_rows, per_shift = predict_shifts(models, windows, {"mels": store.mels}, ["mels"],
                                              [float(s) for s in cfg.tta], batch_size=vit.PREDICT_BATCH)
        write_json(metrics_dir / "metrics.json", metrics)

    with atomic_dir(VIT_MODELS / key) as model_dir:
        for k, state in zip(trained, result.states):
            torch.save(state, model_dir / f"fold_{k}.pt")
        write_json(model_dir / "config.json", {"size": key, "model": mconfig, "folds": trained,
                                               "n_folds": params.n_folds, "labels": labels,
                                               "spec": store.spec.as_dict(), "init": size.init,
                                               "init_report": init_report, "bytes_depend_on": what_bytes_depend_on()})

    sc_rows = rows[scored]
    oof_frame = pd.concat([sc_rows[["row_id"]].reset_index(drop=True),
                           pd.DataFrame(result.oof[scored], columns=labels)], axis=1)
    name = submission_name(key)
    with atomic_dir(OOF / name) as oof_dir:
        oof_frame.to_csv(oof_dir / "oof.csv", index=False, float_format="%.6g")

    probs = np.mean(per_shift, axis=0)
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    sample = HIDDEN / "sample_submission.csv"
    order = submission.order_frame(sample, chunks, labels)
    sub = submission.build(test_rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"submission '{name}'")
    inputs = [SPECTROGRAMS / "windows.csv", SPECTROGRAMS / "mels.npy", SPECTROGRAMS / "spec.json",
              INDEX / "species.csv", INDEX / "chunks.csv", VIT_MODELS / key] + ([sample] if sample.exists() else [])
    manifest = {"submission": name, "model": f"vit@{key}", "tta": [float(s) for s in cfg.tta],
                "entry": {"model": f"vit@{key}", "tta": list(cfg.tta), "postprocess": False},
                "postprocess": {}, "rows": len(sub), "labels": len(labels),
                "sha256": sha256_tree(inputs), "bytes_depend_on": what_bytes_depend_on()}
    with atomic_dir(SUBMISSIONS / name) as tmp:
        sub.to_csv(tmp / "submission.csv", index=False, float_format="%.6f")
        manifest["submission_sha256"] = sha256_file(tmp / "submission.csv")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return VitResult(metrics=metrics, curves=str(VIT_METRICS / key / "curves"), submission=str(SUBMISSIONS / name),
                     seconds=time.perf_counter() - started)
