"""Stage `sidecar_features`: BirdNET V2.4's final embedding of every window the main
extraction wrote, for the sidecar head (eos10's third model).

- Real-data mode (a backbone whose registry entry says `sidecar_extraction`: perch_v2, or the test
  fixture perch_tiny; birdclef_eos/backbone/registry.py): a second extraction.
  The converted BirdNET ONNX of the checkpoint machinery (birdclef_eos/backbone/birdnet.py
  `prepare`, cached in `runtime.cache_dir` and proven against the TFLite interpreter as the
  checkpoint stage proves it) runs through the same runner and window reader as `extract`
  (birdclef_eos/backbone/runner.py, audio/windows.py `forward`) over the rows of
  data/features/windows.csv, read again from data/index at their `start_s`. Writes
  data/sidecar_features/ (windows.csv: the main rows in the main order; embedding.npy
  [n_windows, 1024] float32; meta.json), knobs in `sidecar.extract`.
- Default mode (`backbone.name: birdnet_v24`, no `sidecar_extraction`): the backbone already is BirdNET and
  data/features/embedding.npy already is its final embedding, so nothing runs twice: only
  data/sidecar_features/meta.json, pointing to data/features with the sha256 of its windows.csv and
  embedding.npy (birdclef_eos/data/features.py `save_pointer`; readers use `load_pointed`).

Every window of the main store is readable (extract wrote only the ones it could read), so an
unreadable file here is an error naming it. Resumable as `extract` is (the same shard mechanism,
birdclef_eos/audio/shards.py): progress is saved every ~512 windows under
.dvc/tmp/sidecar-shards/<key>/, <key> a sha256 over the plan, the converted ONNX, the
`sidecar.extract` knobs, the project code and the library versions (`shard_key`); a killed run
continues from its last shard and writes the same bytes as an uninterrupted one; the shard folder
is removed once data/sidecar_features/ is written. On a cluster (`runtime.workers` > 1, or
`runtime.scheduler`) the same shards become tasks of birdclef_eos/audio/cluster.py, one BirdNET
runner per worker, with the bytes of the in-process pass (docs/scaling.md), as in `extract`.
"""
from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdclef_eos.audio.cluster import forward_on_cluster
from birdclef_eos.audio.shards import SHARD_WINDOWS, ShardStore, pass_key
from birdclef_eos.audio.windows import forward
from birdclef_eos.backbone import birdnet, registry
from birdclef_eos.backbone.config import SidecarExtract
from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.data import features as store
from birdclef_eos.data.plans import plan_of_windows
from birdclef_eos.io.cluster import open_client
from birdclef_eos.io.files import sha256_file
from birdclef_eos.io.runtime_config import RuntimeParams
from stages.paths import FEATURES, INDEX, ROOT, SIDECAR_FEATURES, SIDECAR_SHARDS

PARAMS = ("sidecar.extract", "backbone.name", "backbone.birdnet", "dataset.sample_rate")
SIDECAR_BACKBONE = registry.SIDECAR_BACKBONE  # the sidecar's model (BirdNET V2.4)
NAME = "embedding"                 # the one array the sidecar head reads


@dataclass
class SidecarFeaturesResult:
    """What the sidecar_features notebook shows. mode: "reuse" (default mode: a pointer to
    data/features) or "extract" (real-data mode: BirdNET over the main windows); n_windows: rows
    (= data/features/windows.csv rows); channels: the embedding width (BirdNET: 1024); equivalence:
    the conversion check per test signal (extract mode only, else None)."""
    mode: str
    backbone: str
    n_windows: int
    channels: int
    seconds: float
    windows_per_s: float | None
    equivalence: dict | None


def shard_key(params: dict, provider: str, plan, onnx: Path) -> str:
    """The shard folder's name (birdclef_eos/audio/shards.py `pass_key`): the plan, the converted
    ONNX, the `sidecar.extract` knobs, `dataset.sample_rate` and `runtime.provider`."""
    knobs = {"sidecar.extract": params["sidecar"]["extract"], "sample_rate": params["dataset"]["sample_rate"],
             "provider": provider}
    return pass_key(plan, [NAME], [Path(onnx)], knobs, ROOT)


def open_birdnet(cfg: SidecarExtract, params: dict, provider: str, prepared: dict) -> Backbone:
    """The extract runner over the converted BirdNET with no block outputs, at the `sidecar.extract`
    knobs and ``provider`` (`runtime.provider`): its features hold BirdNET's final embedding for 5-s
    chunks at `dataset.sample_rate`."""
    return Backbone(prepared["onnx"], birdnet.runner_spec(birdnet.read_labels(prepared["labels"])), {"blocks": []},
                    threads=cfg.threads, batch_size=cfg.batch_size, chunk_mapping=cfg.chunk_mapping,
                    input_rate=params["dataset"]["sample_rate"], progress=False, frontend=cfg.frontend,
                    provider=provider)


def run(params: dict, key: str | None = None, runner=None) -> SidecarFeaturesResult:
    main_backbone = params["backbone"]["name"]
    started = time.perf_counter()
    if not registry.spec(main_backbone).sidecar_extraction:  # the main embedding already is the sidecar's
        meta = store.save_pointer(SIDECAR_FEATURES, FEATURES, [NAME], {"backbone": SIDECAR_BACKBONE, "mode": "reuse"})
        return SidecarFeaturesResult(mode="reuse", backbone=SIDECAR_BACKBONE, n_windows=meta["n_windows"],
                                     channels=meta["channels"][NAME], seconds=time.perf_counter() - started,
                                     windows_per_s=None, equivalence=None)

    cfg = SidecarExtract.model_validate(params["sidecar"]["extract"])  # typed once (birdclef_eos/backbone/config.py)
    runtime = RuntimeParams.model_validate(params["runtime"])  # typed once (birdclef_eos/io/runtime_config.py)
    bn = params["backbone"]["birdnet"]
    prepared = birdnet.prepare(bn, Path(os.path.expanduser(runtime.cache_dir)))
    report = birdnet.equivalence(prepared["tflite"], prepared["onnx"])
    birdnet.check_equivalence(report, bn["max_logit_diff"], prepared["onnx"])
    windows, _, main_meta = store.load(FEATURES, names=[])
    plan = plan_of_windows(INDEX, windows)
    digest = shard_key(params, runtime.provider, plan, prepared["onnx"])
    shards = ShardStore(SIDECAR_SHARDS / digest, SHARD_WINDOWS)
    extracted = time.perf_counter()
    # a given runner (a test's) runs in-process
    scheduler, workers = (runtime.scheduler, runtime.workers) if runner is None else (None, 1)
    with open_client(scheduler, workers) as client:
        if client is None:
            _, arrays, _ = forward(runner or open_birdnet(cfg, params, runtime.provider, prepared), plan, [NAME], cfg.batch_windows,
                                   "error", params["dataset"]["sample_rate"], desc="sidecar_features", shards=shards)
        else:  # the same shards as tasks on the cluster's workers, one BirdNET runner each: the same bytes
            _, arrays, _ = forward_on_cluster(
                client, functools.partial(open_birdnet, cfg, params, runtime.provider, prepared), plan, [NAME], cfg.batch_windows,
                "error", params["dataset"]["sample_rate"], token=digest, shards=shards)
    seconds = time.perf_counter() - extracted
    embedding = arrays[NAME].astype(np.float32)
    meta = {"backbone": SIDECAR_BACKBONE, "mode": "extract", "main_backbone": main_backbone,
            "onnx_sha256": sha256_file(prepared["onnx"]), "conversion_key": prepared["key"],
            "equivalence": report, "chunk_mapping": cfg.chunk_mapping, "n_windows": len(windows),
            "channels": {NAME: int(embedding.shape[1])}, "windows": main_meta.get("windows"),
            "main_windows_sha256": sha256_file(FEATURES / "windows.csv")}
    store.save(SIDECAR_FEATURES, windows, {NAME: embedding}, meta)
    shutil.rmtree(SIDECAR_SHARDS, ignore_errors=True)  # this run's shards, and any of older settings
    return SidecarFeaturesResult(mode="extract", backbone=SIDECAR_BACKBONE, n_windows=len(windows),
                                 channels=int(embedding.shape[1]), seconds=time.perf_counter() - started,
                                 windows_per_s=len(windows) / max(seconds, 1e-9), equivalence=report)
