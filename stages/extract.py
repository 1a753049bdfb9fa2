"""Stage `extract`: one pass of the probed backbone over every window the heads need.

Windows: `extract.windows_per_recording` seeded random 5-s windows per focal recording; every
5-s chunk of every training soundscape (labelled and unlabelled) at shift 0; every chunk of
every test soundscape at each `extract.tta_shifts` shift. Features: the selected blocks (the
probe's choice when `head.blocks` is auto), the final embedding and the logits, written to
data/features/ (docs/contracts.md).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.data import features as store
from birdclef_eos.io.files import sha256_file
from stages.paths import (BACKBONE_JSON, BLOCKS_JSON, FEATURES, INDEX, PROBE_SELECTED,
                          PROBED_ONNX)
from birdclef_eos.audio.windows import forward, random_starts

PARAMS = ("extract", "head", "backbone")
INDEX_READ = {"keep_default_na": False, "dtype": {"labels": str, "secondary_labels": str,
                                                  "site": str, "primary_label": str,
                                                  "recording_id": str, "soundscape_id": str,
                                                  "row_id": str, "path": str}}


class ExtractError(ValueError):
    pass


def open_backbone(backbone: dict, blocks: list[int]):
    from birdclef_eos.backbone.runner import Backbone  # the runner (a domain module)
    return Backbone(PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON, backbone["threads"],
                    backbone["batch_size"], backbone["chunk_mapping"], blocks=blocks, progress=False)


def selected_blocks(head_blocks, known: list[int]) -> list[int]:
    """The blocks to extract: the probe's file when ``auto``, else the explicit list."""
    if head_blocks == "auto":
        if not PROBE_SELECTED.exists():
            raise ExtractError(f"{PROBE_SELECTED}: missing; run the probe stage or set head.blocks "
                               "to an explicit list")
        blocks = json.loads(PROBE_SELECTED.read_text())["blocks"]
    elif isinstance(head_blocks, list) and head_blocks:
        blocks = head_blocks
    else:
        raise ExtractError(f"head.blocks must be 'auto' or a list of block indices, not {head_blocks!r}")
    unknown = [b for b in blocks if b not in known]
    if unknown:
        raise ExtractError(f"head.blocks: blocks {unknown} are not in {BLOCKS_JSON} (known: {known})")
    return sorted(int(b) for b in blocks)


def focal_plan(recordings: pd.DataFrame, per_recording: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for rec in recordings.sort_values("recording_id").itertuples(index=False):
        for start in sorted(random_starts(rec.duration_s, per_recording, rng)):
            rows.append({"source": "focal", "file_id": rec.recording_id, "path": rec.path,
                         "start_s": start, "shift_s": 0.0, "read_s": start, "row_id": "",
                         "chunk": -1, "split": "focal", "primary_label": rec.primary_label,
                         "labels": rec.primary_label, "secondary_labels": rec.secondary_labels,
                         "site": "", "hour": -1})
    return pd.DataFrame(rows)


def soundscape_plan(soundscapes: pd.DataFrame, chunks: pd.DataFrame, shifts: list[float]) -> pd.DataFrame:
    """Every chunk of every soundscape: training splits at shift 0, test at every TTA shift."""
    paths = soundscapes.set_index("soundscape_id")["path"]
    missing = sorted(set(chunks["soundscape_id"]) - set(paths.index))
    if missing:
        raise ExtractError(f"{INDEX / 'chunks.csv'}: soundscape_id {missing[:3]} not in soundscapes.csv")
    rows = []
    for c in chunks.sort_values(["soundscape_id", "chunk"]).itertuples(index=False):
        test = c.split == "test"
        for shift in (shifts if test else [0.0]):
            start = round(float(c.start_s) + float(shift), 3)  # where the shifted window starts
            rows.append({"source": "test" if test else "soundscape", "file_id": c.soundscape_id,
                         "path": paths[c.soundscape_id], "start_s": start,
                         "shift_s": float(shift), "read_s": start,
                         "row_id": c.row_id, "chunk": int(c.chunk), "split": c.split,
                         "primary_label": "", "labels": "" if test else c.labels,
                         "secondary_labels": "", "site": c.site, "hour": int(c.hour)})
    return pd.DataFrame(rows)


def window_plan(extract: dict) -> pd.DataFrame:
    recordings = pd.read_csv(INDEX / "recordings.csv", **INDEX_READ)
    soundscapes = pd.read_csv(INDEX / "soundscapes.csv", **INDEX_READ)
    chunks = pd.read_csv(INDEX / "chunks.csv", **INDEX_READ)
    plans = [focal_plan(recordings, extract["windows_per_recording"], extract["seed"]),
             soundscape_plan(soundscapes, chunks, extract["tta_shifts"])]
    return pd.concat([p for p in plans if len(p)], ignore_index=True)


def run(params: dict, key: str | None = None, runner=None) -> dict:
    extract, backbone = params["extract"], params["backbone"]
    blocks_info = json.loads(BLOCKS_JSON.read_text())
    blocks = selected_blocks(params["head"]["blocks"], [b["index"] for b in blocks_info["blocks"]])
    plan = window_plan(extract)
    names = [f"block_{i:02d}" for i in blocks] + ["embedding", "logits"]

    started = time.perf_counter()
    runner = runner or open_backbone(backbone, blocks)
    kept, arrays, bad_audio = forward(runner, plan, names, extract["batch_windows"],
                                      extract["on_bad_audio"], desc="extract")
    seconds = time.perf_counter() - started
    arrays["logits"] = arrays["logits"].astype(np.float16)
    for name in names[:-1]:
        arrays[name] = arrays[name].astype(np.float32)
    windows = plan[kept].drop(columns=["path", "read_s"]).reset_index(drop=True)
    counts = {s: int(n) for s, n in windows["split"].value_counts().sort_index().items()}
    meta = {"blocks": blocks, "channels": {n: int(a.shape[1]) for n, a in arrays.items()},
            "backbone": backbone["name"], "backbone_sha256": sha256_file(PROBED_ONNX) if PROBED_ONNX.exists() else None,
            "bad_audio": bad_audio, "windows": counts, "tta_shifts": extract["tta_shifts"],
            "windows_per_recording": extract["windows_per_recording"], "seed": extract["seed"]}
    store.save(FEATURES, windows, arrays, meta)
    return {"blocks": blocks, "windows": counts, "n_windows": len(windows), "seconds": seconds,
            "windows_per_s": len(windows) / max(seconds, 1e-9), "bad_audio": bad_audio,
            "channels": meta["channels"]}
