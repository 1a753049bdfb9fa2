"""Stage `extract_labelled`: the labelled soundscape chunks read again at `extract.labelled_shifts`.

Why a stage of its own: test chunks are read at every `extract.tta_shifts` shift, training ones at
shift 0 only, so no OOF could judge test-time augmentation (TTA). This stage reads every labelled
soundscape chunk at each shift of `extract.labelled_shifts` (shift 0 excluded: data/features has
it) through the same probed backbone, runner knobs and window reader as `extract`, and writes the
same arrays (every exposed block, the final embedding, the logits of `extract.logits`) to
data/features_labelled/. A separate output keeps data/features, and everything that reads it,
byte for byte as before (nothing downstream has to learn to skip shifted training rows).
Readers: `protossm` (its OOF at each `base.protossm.tta_candidates` set) and `base` (the head's
OOF at `base.reference_tta`, so that base and head are compared at the windows they submit with).
`extract.labelled_shifts: null` writes an empty store (no rows, no arrays): only shift-0 candidates
can then be judged.

Resumable as `extract` is (birdclef_eos/audio/shards.py): shards under
.dvc/tmp/labelled-shards/<key>/, removed once data/features_labelled/ is written.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.audio.config import LabelledExtract
from birdclef_eos.audio.shards import SHARD_WINDOWS, ShardStore, pass_key
from birdclef_eos.audio.windows import forward
from birdclef_eos.backbone.labels import competition_map, select_logits
from birdclef_eos.data import features as store
from birdclef_eos.data.plans import labelled_plan
from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import read_json, sha256_file
from birdclef_eos.io.runtime_config import RuntimeParams
from stages.paths import BACKBONE_JSON, BLOCKS_JSON, FEATURES_LABELLED, INDEX, LABELLED_SHARDS, PROBED_ONNX, ROOT
from stages.runner import open_backbone

PARAMS = ("extract.labelled_shifts", "extract.logits", "extract.on_bad_audio", "extract.batch_windows", "backbone.name",
          "backbone.chunk_mapping", "backbone.batch_size", "backbone.threads", "backbone.frontend", "dataset.sample_rate")


class ExtractLabelledError(ValueError):
    pass


@dataclass
class ExtractLabelledResult:
    """What the notebook shows: the shifts read, windows per shift, seconds and unreadable files."""
    shifts: list[float]
    windows: dict[str, int]
    n_windows: int
    seconds: float
    bad_audio: list[dict]


def shifts_of(cfg: LabelledExtract) -> list[float]:
    """`extract.labelled_shifts` without shift 0 (already in data/features), in the given order; null: none."""
    return [float(s) for s in cfg.labelled_shifts or [] if float(s) != 0.0]


def logit_columns(logits: np.ndarray, mode: str) -> np.ndarray | None:
    """The logit columns `extract` keeps (`extract.logits`), the same way: competition, all or none."""
    if mode == "none":
        return None
    if mode == "all":
        return logits.astype(np.float16)
    classes = read_json(BACKBONE_JSON, "run the checkpoint stage")["classes"]
    species = species_table(INDEX)
    return select_logits(logits, competition_map(classes, species["scientific_name"].tolist())).astype(np.float16)


def run(params: dict, key: str | None = None, runner=None) -> ExtractLabelledResult:
    started = time.perf_counter()
    cfg = LabelledExtract.pick(params["extract"])  # typed once; the backbone knobs stay the runner's mapping
    runtime = RuntimeParams.model_validate(params["runtime"])  # typed once (birdclef_eos/io/runtime_config.py)
    shifts = shifts_of(cfg)
    plan = labelled_plan(INDEX, shifts)
    meta = {"labelled_shifts": shifts, "logits": cfg.logits, "backbone": params["backbone"]["name"],
            "backbone_sha256": sha256_file(PROBED_ONNX) if PROBED_ONNX.exists() else None}
    if plan.empty:
        store.save(FEATURES_LABELLED, pd.DataFrame(columns=store.WINDOW_COLUMNS), {},
                   {**meta, "blocks": [], "channels": {}, "windows": {}, "bad_audio": []})
        return ExtractLabelledResult(shifts=shifts, windows={}, n_windows=0, seconds=time.perf_counter() - started,
                                     bad_audio=[])
    blocks = [int(b["index"]) for b in read_json(BLOCKS_JSON, "run the surgery stage")["blocks"]]
    names = [f"block_{i:02d}" for i in blocks] + ["embedding", "logits"]
    knobs = {"extract": cfg.model_dump(),
             "backbone": params["backbone"], "sample_rate": params["dataset"]["sample_rate"],
             "provider": runtime.provider}
    digest = pass_key(plan, names, [PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON], knobs, ROOT)
    shards = ShardStore(LABELLED_SHARDS / digest, SHARD_WINDOWS)
    kept, arrays, bad_audio = forward(runner or open_backbone(params, runtime.provider), plan, names, cfg.batch_windows,
                                      cfg.on_bad_audio, params["dataset"]["sample_rate"], desc="extract_labelled",
                                      shards=shards)
    arrays["logits"] = logit_columns(arrays["logits"], cfg.logits)
    if arrays["logits"] is None:
        del arrays["logits"]
    for name in names[:-1]:
        arrays[name] = arrays[name].astype(np.float32)
    windows = plan[kept].drop(columns=["path", "read_s"]).reset_index(drop=True)
    counts = {f"{s:g}": int(n) for s, n in windows["shift_s"].astype(float).value_counts().sort_index().items()}
    store.save(FEATURES_LABELLED, windows, arrays,
               {**meta, "blocks": blocks, "channels": {n: int(a.shape[1]) for n, a in arrays.items()},
                "windows": counts, "bad_audio": bad_audio})
    shutil.rmtree(LABELLED_SHARDS, ignore_errors=True)  # this run's shards, and any of older settings
    return ExtractLabelledResult(shifts=shifts, windows=counts, n_windows=len(windows),
                                 seconds=time.perf_counter() - started, bad_audio=bad_audio)
