"""The feature store that `extract` writes and later stages read (docs/contracts.md).

A folder holding ``windows.csv`` (one row per feature row), one ``.npy`` array per name
(``block_07``, ``embedding``, ``logits``, ...) with the same row order, and ``meta.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.io.files import atomic_dir, read_json, sha256_file, write_json

WINDOW_COLUMNS = ["source", "file_id", "start_s", "shift_s", "row_id", "chunk", "split",
                  "primary_label", "labels", "secondary_labels", "site", "hour"]


class FeatureStoreError(ValueError):
    pass


def save(folder: str | Path, windows: pd.DataFrame, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write the store atomically; every array must have one row per window and be finite."""
    missing = [c for c in WINDOW_COLUMNS if c not in windows.columns]
    if missing:
        raise FeatureStoreError(f"windows table lacks columns {missing}")
    for name, arr in arrays.items():
        if len(arr) != len(windows):
            raise FeatureStoreError(f"array '{name}' has {len(arr)} rows, windows.csv has {len(windows)}")
        if not np.all(np.isfinite(arr)):
            bad = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise FeatureStoreError(f"array '{name}' has a non-finite value at row {bad} "
                                    f"(file {windows.iloc[bad]['file_id']})")
    with atomic_dir(folder) as tmp:
        windows[WINDOW_COLUMNS].to_csv(tmp / "windows.csv", index=False)
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load(folder: str | Path, names: list[str] | None = None, mmap: bool = True):
    """Return (windows DataFrame, {name: array}, meta). ``names`` limits which arrays load."""
    folder = Path(folder)
    if not (folder / "windows.csv").exists():
        raise FeatureStoreError(f"{folder}: no windows.csv; run the extract stage first")
    windows = pd.read_csv(folder / "windows.csv", keep_default_na=False,
                          dtype={"labels": str, "secondary_labels": str, "row_id": str,
                                 "site": str, "primary_label": str, "file_id": str})
    meta = read_json(folder / "meta.json", "written by the extract stage; run `dvc repro -f extract`")
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.npy"))
    arrays = {}
    for name in names:
        path = folder / f"{name}.npy"
        if not path.exists():
            raise FeatureStoreError(f"{path}: array '{name}' not in the feature store")
        arrays[name] = np.load(path, mmap_mode="r" if mmap else None)
    return windows, arrays, meta


def block_names(meta: dict) -> list[str]:
    """Array names of the selected blocks, in block order (``block_07``, ...)."""
    return [f"block_{i:02d}" for i in meta["blocks"]]


def save_pointer(folder: str | Path, main: str | Path, names: list[str], meta: dict) -> dict:
    """Write a store that holds no arrays of its own: ``meta.json`` says that its arrays ``names``
    are those of the store ``main`` (the sidecar in the default mode, where the backbone already is
    BirdNET), with the sha256 of main's windows.csv and arrays, so that a changed main store
    changes this one and a stale pointer is caught (``load_pointed``). Returns the meta written."""
    main = Path(main)
    windows, arrays, main_meta = load(main, names=names)
    record = {**meta, "reuses": main.as_posix(), "names": list(names), "n_windows": len(windows),
              "channels": {n: int(arrays[n].shape[1]) for n in names},
              "sha256": {f: sha256_file(main / f) for f in ["windows.csv"] + [f"{n}.npy" for n in names]}}
    with atomic_dir(folder) as tmp:
        write_json(tmp / "meta.json", record)
    return record


def load_pointed(folder: str | Path, main: str | Path, names: list[str], mmap: bool = True):
    """``load`` of a store that may be a pointer (``save_pointer``) to the store ``main``: the
    arrays come from main after checking its windows.csv and arrays are the ones pointed to."""
    folder, main = Path(folder), Path(main)
    meta = read_json(folder / "meta.json", "run the stage that writes it")
    if "reuses" not in meta:
        return load(folder, names, mmap)
    unknown = [n for n in names if n not in meta["names"]]
    if unknown:
        raise FeatureStoreError(f"{folder}/meta.json points to {main} for {meta['names']} only, not {unknown}")
    for f in ["windows.csv"] + [f"{n}.npy" for n in names]:
        if sha256_file(main / f) != meta["sha256"][f]:
            raise FeatureStoreError(f"{folder}/meta.json: {main / f} is not the file it points to (sha256 "
                                    f"changed): re-run the stage that writes {folder}")
    windows, arrays, _ = load(main, names, mmap)
    return windows, arrays, meta
