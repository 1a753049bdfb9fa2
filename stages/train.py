"""Stage `train@<variant>`: one sequence head (paper section 4), trained in 5 folds on the
extracted block features.

Reads the blocks `train.blocks` names (`auto`: models/probe_selected.json) from data/features; a
variant's own `blocks` overrides it (a list, or auto | last3 | embedding | best1 | all, see
`resolve_tokens`: the ablation variants),
data/index/species.csv (label order) and, for the probe-versus-weights table,
build/metrics/probe/probe.json. Writes models/heads/<variant>/ (fold checkpoints + config.json),
predictions/oof/<variant>/oof.csv (one row per labelled soundscape chunk),
build/metrics/train/<variant>/ (metrics.json + DVCLive curves per fold) and, when the variant names a
`table`, the probe ranking next to the learned block weights.

``run`` takes the params as the notebook passes them (papermill hands it JSON) or as ``Params``; it
types them once (``Params.of``: `train` through ``TrainParams``, birdclef_eos/heads/config.py) and
reads attributes from then on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from birdclef_eos.data import features
from birdclef_eos.data.species import species_labels
from birdclef_eos.heads import crossval, training
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.config import VARIANT_BLOCK_WORDS, TrainParams, TrainVariant
from birdclef_eos.heads.registry import head_type
from birdclef_eos.io.machine import what_bytes_depend_on
from birdclef_eos.io.files import read_json, write_text
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.report.tables import probe_vs_weights
from stages.paths import (FEATURES, HEADS, INDEX, OOF, PROBE_METRICS, PROBE_SELECTED, REPORTED, TABLES,
                          TRAIN_METRICS)

PARAMS = ("train.blocks", "train.seed", "train.threads", "train.n_folds", "train.fold_salt", "train.secondary_weight",
          "train.model", "train.optim", "train.variants.{key}")
PAPER_N_PARAMS = 430_000          # the paper's "about 430k parameters"
PAPER_CHANNELS = [232, 384, 384]  # blocks 21, 24, 25 of Perch v2
PAPER_CLASSES = 234


class TrainStageError(ValueError):
    pass


@dataclass(frozen=True)
class Params:
    """What the stage reads, typed: `train` (with the one variant it trains) and the unhashed
    `runtime` (the cluster the folds run on)."""
    train: TrainParams
    runtime: RuntimeParams

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(TrainParams.model_validate(params["train"]), RuntimeParams.model_validate(params["runtime"]))


@dataclass
class TrainResult:
    """What the train notebook shows.

    metrics: build/metrics/train/<variant>/metrics.json (OOF macro-AUC, focal top-1, parameter counts,
    per-fold records, block weights or CLS attention). table: the probe-versus-weights markdown
    (None when the variant names no table). curves: the DVCLive folder (one per fold).
    """
    metrics: dict
    table: str | None
    seconds: float
    curves: str


SYMBOLIC = VARIANT_BLOCK_WORDS                              # a variant's `blocks` (the ablation)
EMBEDDING = "embedding"                                     # the final embedding array, one token


def resolve_tokens(choice, known: list[int], selected: list[int] | None = None,
                   probe_scores: dict | None = None) -> list[str]:
    """Feature-store arrays the head reads, in block order: ``auto`` = the probe's selection
    (``selected``), ``last3`` = the last three extracted blocks, ``embedding`` = the final
    embedding as a single token, ``best1`` = the probe's rank-1 block among the extracted ones
    (``probe_scores``: probe.json's per-block entries), ``all`` = every extracted block; or an
    explicit list of block indices."""
    known = sorted(int(b) for b in known)
    if choice == EMBEDDING:
        return [EMBEDDING]
    if choice == "auto":
        if selected is None:
            raise TrainStageError(f"blocks 'auto' needs {PROBE_SELECTED}: run the probe stage or name the blocks")
        blocks = selected
    elif choice == "last3":
        blocks = known[-3:]
    elif choice == "all":
        blocks = known
    elif choice == "best1":
        ranked = [(int(v["rank"]), int(n.split("_")[-1])) for n, v in (probe_scores or {}).items()
                  if n.startswith("block_") and "rank" in v and int(n.split("_")[-1]) in known]
        if not ranked:
            raise TrainStageError(f"blocks 'best1' needs the probe's ranks of the extracted blocks "
                                  f"({PROBE_METRICS}/probe.json)")
        blocks = [min(ranked)[1]]
    elif isinstance(choice, str):
        raise TrainStageError(f"blocks '{choice}': expected one of {' | '.join(SYMBOLIC)} or a list of indices")
    else:
        blocks = choice
    unknown = [b for b in blocks if b not in known]
    if unknown:
        raise TrainStageError(f"blocks {unknown} are not in {FEATURES}/meta.json (known: {known})")
    return [f"block_{b:02d}" for b in sorted(int(b) for b in blocks)]


def head_tokens(choice, known: list[int]) -> list[str]:
    """``resolve_tokens`` with the probe's outputs read from disk when the choice needs them."""
    selected = read_json(PROBE_SELECTED)["blocks"] if choice == "auto" and PROBE_SELECTED.exists() else None
    probe_json = PROBE_METRICS / "probe.json"
    scores = read_json(probe_json).get("blocks", {}) if choice == "best1" and probe_json.exists() else None
    return resolve_tokens(choice, known, selected, scores)


def token_label(name: str):
    """block_07 -> 7; embedding -> 'embedding' (what metrics.json and config.json list as `blocks`)."""
    return int(name.split("_")[-1]) if name.startswith("block_") else name


def model_config(train: TrainParams, variant: TrainVariant, channels: list[int], n_classes: int) -> dict:
    return {"type": variant.head, "channels": channels, "n_classes": n_classes, **train.model.model_dump()}


def read_probe(path: Path, blocks: list[int]) -> dict[int, dict]:
    """Accuracy and rank (among all probed blocks) of each selected block."""
    scores = read_json(path, "the probe-versus-weights table needs the probe stage").get("blocks", {})
    out = {}
    for b in blocks:
        name = f"block_{b:02d}"
        if name not in scores or "accuracy" not in scores[name]:
            raise TrainStageError(f"{path}: no accuracy for {name} (the head reads blocks {blocks})")
        out[b] = {"accuracy": float(scores[name]["accuracy"]), "rank": scores[name].get("rank")}
    return out


def reported_weights() -> dict | None:
    if not REPORTED.exists():
        return None
    return (yaml.safe_load(REPORTED.read_text()) or {}).get("scalar_mix_weights")


def paper_config_params(train: TrainParams, head: str) -> int:
    model = heads.build_head({"type": head, "channels": PAPER_CHANNELS, "n_classes": PAPER_CLASSES,
                              **train.model.model_dump()})
    return heads.count_parameters(model)


def run(params: dict | Params, key: str | None = None) -> TrainResult:
    params = Params.of(params)
    train = params.train
    variants = train.variants
    if key not in variants:
        raise TrainStageError(f"params.yaml train.variants has no entry '{key}'; known: {sorted(variants)}")
    variant = variants[key]
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(train.threads)

    windows, _, meta = features.load(FEATURES, names=[])
    choice = train.blocks if variant.blocks is None else variant.blocks
    names = head_tokens(choice, meta["blocks"])
    blocks = [token_label(n) for n in names]
    _, arrays, _ = features.load(FEATURES, names=names)
    labels = species_labels(INDEX)
    data = crossval.fold_data(windows, arrays, names, labels, train.secondary_weight, train.n_folds,
                              train.fold_salt)
    channels = [int(t.shape[1]) for t in data.tokens]
    mconfig = model_config(train, variant, channels, len(labels))

    def describe(result: crossval.FoldsResult) -> dict:
        n_params = heads.count_parameters(heads.build_head(mconfig))
        paper_count = paper_config_params(train, variant.head)
        summary = crossval.summary(data, result, labels)
        metrics = {
            "variant": key, "head": variant.head, "block_choice": choice, "blocks": blocks, "channels": channels,
            "oof_macro_auc": summary["oof_macro_auc"], "focal_top1": summary["focal_top1"],
            "n_params": n_params, "n_params_paper_reported": PAPER_N_PARAMS,
            "n_params_minus_paper": n_params - PAPER_N_PARAMS,
            "n_params_paper_config": paper_count,
            "n_params_paper_config_minus_paper": paper_count - PAPER_N_PARAMS,
            "n_labelled_chunks": summary["n_labelled_chunks"], "n_focal_windows": summary["n_focal_windows"],
            "folds": summary["folds"],
        }
        if result.weights:
            metrics["block_weights"] = crossval.weight_summary(blocks, result.weights)
        if result.attention:
            metrics["cls_attention"] = crossval.weight_summary(blocks, result.attention)
        return metrics

    _, metrics = crossval.cross_validate(
        data, labels, mconfig, training.TrainConfig.from_mapping(train.optim.model_dump()), train.n_folds, train.seed,
        variant.soundscape_fraction, crossval.Destinations(TRAIN_METRICS / key, HEADS / key, OOF / key),
        describe, {"variant": key, "model": mconfig, "blocks": blocks, "tokens": names, "labels": labels,
                   "n_folds": train.n_folds, "bytes_depend_on": what_bytes_depend_on()},
        desc=f"train@{key} folds", scheduler=params.runtime.scheduler,
        workers=params.runtime.workers, threads=train.threads)

    table = None
    if variant.table and EMBEDDING in blocks:
        table = (f"The head of `{key}` reads the final embedding as one token: there is no block weight "
                 "to set beside the probe's ranking.\n")
        write_text(TABLES / f"{variant.table}.md", table)
    elif variant.table:
        weights = metrics.get("block_weights") or metrics["cls_attention"]
        weight_name = "scalar-mix weight" if "block_weights" in metrics else "CLS attention weight"
        probe = read_probe(PROBE_METRICS / "probe.json", blocks)
        head = head_type(variant.head, f"params.yaml train.variants.{key}.head")
        table, rho = probe_vs_weights(probe, blocks, weights["mean"], weight_name,
                                      reported_weights() if head.paper_weights else None)
        table += head.table_note
        write_text(TABLES / f"{variant.table}.md", table)
    return TrainResult(metrics=metrics, table=table, seconds=time.perf_counter() - started,
                       curves=str(TRAIN_METRICS / key / "curves"))
