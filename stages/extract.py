"""Stage `extract`: one pass of the probed backbone over every window the heads need.

Windows: `extract.windows_per_recording` seeded random 5-s windows per focal recording; every
5-s chunk of every training soundscape (labelled and unlabelled) at shift 0; every chunk of
every test soundscape at each `extract.tta_shifts` shift. Features: every exposed block's pooled
output, the final embedding and the logit columns a later stage reads (`extract.logits`),
written to data/features/ (docs/contracts.md).
Which blocks a head reads is the train stage's choice (`train.blocks`), so changing it re-runs
no extraction.

Resumable: progress is saved every ~512 windows under .dvc/tmp/extract-shards/<key>/ (outside the
outputs, which DVC deletes before the stage runs), where <key> is a sha256 over everything the
features depend on (`shard_key`); a run killed halfway continues from its last shard and writes the
same bytes as an uninterrupted one. The shard folder is removed once data/features/ is written.

On a cluster (`runtime.workers` > 1: an embedded local Dask cluster; `runtime.scheduler`: a running
one): the same shards become tasks of birdclef_eos/audio/cluster.py, one backbone runner per worker,
with the bytes of the in-process pass (docs/scaling.md).
"""
from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.audio.cluster import forward_on_cluster
from birdclef_eos.audio.config import ExtractParams
from birdclef_eos.data.species import species_table
from birdclef_eos.io.cluster import open_client
from birdclef_eos.audio.shards import SHARD_WINDOWS, ShardStore, pass_key
from birdclef_eos.audio.windows import forward
from birdclef_eos.data import features as store
from birdclef_eos.backbone.labels import competition_map, select_logits
from birdclef_eos.data.plans import window_plan
from birdclef_eos.io.files import read_json, sha256_file
from birdclef_eos.io.runtime_config import RuntimeParams
from stages.paths import BACKBONE_JSON, BLOCKS_JSON, EXTRACT_SHARDS, FEATURES, INDEX, PROBED_ONNX, ROOT
from stages.runner import open_backbone

PARAMS = ("extract", "backbone.name", "backbone.chunk_mapping", "backbone.batch_size", "backbone.threads", "backbone.frontend",
          "dataset.sample_rate")


@dataclass
class ExtractResult:
    """What the extract notebook shows.

    blocks: every block index stored (data/features/block_<ii>.npy, each [n_windows, C_i]).
    windows: rows per split ({"focal": n, "labelled": n, "unlabelled": n, "test": n}).
    channels: width of every stored array (block_<ii>, embedding, logits).
    """
    blocks: list[int]
    windows: dict[str, int]
    n_windows: int
    seconds: float
    windows_per_s: float
    bad_audio: list[dict]
    channels: dict[str, int]


def shard_key(params: dict, provider: str, plan: pd.DataFrame, names: list[str]) -> str:
    """The shard folder's name (birdclef_eos/audio/shards.py `pass_key`): the plan, the output
    names, the probed model files and the params that reach the runner (and `runtime.provider`)."""
    knobs = {s: params[s] for s in ("backbone", "dataset", "extract")}
    knobs["provider"] = provider
    return pass_key(plan, names, [PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON], knobs, ROOT)


def keep_logits(logits: np.ndarray, mode: str) -> tuple[np.ndarray | None, dict]:
    """The logit columns a later stage reads (`extract.logits`): `competition` keeps one float16
    column per competition class (species.csv order) from the backbone class of the same
    scientific name, else its genus's maximum, else 0; `all` keeps every backbone class; `none`
    keeps no logits."""
    if mode == "none":
        return None, {"mode": mode}
    if mode == "all":
        return logits.astype(np.float16), {"mode": mode, "columns": int(logits.shape[1])}
    classes = read_json(BACKBONE_JSON, "run the checkpoint stage")["classes"]
    species = species_table(INDEX)
    mapping = competition_map(classes, species["scientific_name"].tolist())
    return (select_logits(logits, mapping).astype(np.float16),
            {"mode": mode, "columns": len(mapping.source), "from_backbone_columns": len(classes),
             "sources": mapping.counts(),
             "by_class": dict(zip(species["primary_label"], mapping.source))})


def run(params: dict, key: str | None = None, runner=None) -> ExtractResult:
    """``params`` as the notebook passes them; `extract` and `runtime` are typed once here (the backbone
    and the sample rate stay a mapping: stages/runner.py opens the backbone with them)."""
    extract = ExtractParams.model_validate(params["extract"])
    runtime = RuntimeParams.model_validate(params["runtime"])
    inventory = read_json(BLOCKS_JSON, "run the surgery stage")
    blocks = [int(b["index"]) for b in inventory["blocks"]]
    plan = window_plan(INDEX, extract.windows_per_recording, extract.seed, extract.tta_shifts)
    names = [f"block_{i:02d}" for i in blocks] + ["embedding", "logits"]

    started = time.perf_counter()
    digest = shard_key(params, runtime.provider, plan, names)
    shards = ShardStore(EXTRACT_SHARDS / digest, SHARD_WINDOWS)
    # a given runner (a test's) runs in-process
    scheduler, workers = (runtime.scheduler, runtime.workers) if runner is None else (None, 1)
    with open_client(scheduler, workers) as client:
        if client is None:
            kept, arrays, bad_audio = forward(runner or open_backbone(params, runtime.provider), plan, names,
                                              extract.batch_windows, extract.on_bad_audio,
                                              params["dataset"]["sample_rate"], desc="extract", shards=shards)
        else:  # the same tasks on the cluster's workers, one runner each: the same bytes
            kept, arrays, bad_audio = forward_on_cluster(
                client, functools.partial(open_backbone, params, runtime.provider), plan, names, extract.batch_windows,
                extract.on_bad_audio, params["dataset"]["sample_rate"], token=digest, shards=shards)
    seconds = time.perf_counter() - started
    arrays["logits"], logits_meta = keep_logits(arrays["logits"], extract.logits)
    if arrays["logits"] is None:
        del arrays["logits"]
    for name in names[:-1]:
        arrays[name] = arrays[name].astype(np.float32)
    windows = plan[kept].drop(columns=["path", "read_s"]).reset_index(drop=True)
    counts = {s: int(n) for s, n in windows["split"].value_counts().sort_index().items()}
    meta = {"blocks": blocks, "channels": {n: int(a.shape[1]) for n, a in arrays.items()},
            "backbone": params["backbone"]["name"],
            "backbone_sha256": sha256_file(PROBED_ONNX) if PROBED_ONNX.exists() else None,
            "bad_audio": bad_audio, "windows": counts, "tta_shifts": extract.tta_shifts,
            "windows_per_recording": extract.windows_per_recording, "seed": extract.seed,
            "logits": logits_meta}
    store.save(FEATURES, windows, arrays, meta)
    shutil.rmtree(EXTRACT_SHARDS, ignore_errors=True)  # this run's shards, and any of older settings
    return ExtractResult(blocks=blocks, windows=counts, n_windows=len(windows), seconds=seconds,
                         windows_per_s=len(windows) / max(seconds, 1e-9), bad_audio=bad_audio,
                         channels=meta["channels"])
