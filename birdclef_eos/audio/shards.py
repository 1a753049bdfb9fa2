"""Progress of a long ``forward`` pass kept on disk, so that a killed run continues where it stopped.

``forward(..., shards=ShardStore(folder))`` saves, after the runner batch that brings the unsaved
windows to ``shard_windows`` or more, one ``shard_<nnnnn>.npz`` (written atomically) holding the
outputs of the files done since the previous shard, their plan rows, the rows of skipped files and
their ``bad_audio`` entries. A shard always ends right after a runner batch, where ``forward``'s
buffer is empty, so a resumed run feeds the runner exactly the batches an uninterrupted run would:
the result is byte-identical, wherever the run was stopped.

The folder must be private to one result: its name should be a digest of everything the outputs
depend on (the caller's job); a shard that does not fit what it is loaded for is ignored, with the
shards after it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.io.files import atomic_path

SHARD_WINDOWS = 512
VERSIONED = ("numpy", "onnxruntime", "onnxruntime-gpu", "soundfile", "scipy")


def pass_key(plan: pd.DataFrame, names: list[str], files: list[Path], knobs: dict, root: Path) -> str:
    """sha256 over everything a pass's outputs depend on, to name its shard folder, so that shards
    of another input, model, setting, code or library version are never resumed: the plan, the
    output names, the model ``files`` (their sha256, or "absent"), the ``knobs`` that reach the
    runner (JSON), each audio file's size and modification time, every project source file under
    ``root`` (birdclef_eos/ and stages/), and the numpy / onnxruntime / soundfile / scipy versions."""
    from birdclef_eos.io.files import sha256_file

    digest = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    part("plan", plan.to_csv(index=False).encode())
    part("names", json.dumps(names).encode())
    for f in files:
        part(str(f), (sha256_file(f) if Path(f).exists() else "absent").encode())
    part("params", json.dumps(knobs, sort_keys=True).encode())
    stats = []
    for path in plan["path"].drop_duplicates():
        try:
            st = os.stat(path)
            stats.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([str(path), None, None])
    part("audio", json.dumps(stats).encode())
    for f in sorted(list((root / "birdclef_eos").rglob("*.py")) + list((root / "stages").glob("*.py"))):
        part(f.relative_to(root).as_posix(), f.read_bytes())
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    part("versions", json.dumps(versions, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass
class Shard:
    """One saved piece of a pass. ``start``/``end``: files (path groups, in plan order) consumed
    before and after it; ``rows``: plan rows of ``arrays``, in the order they were run;
    ``skipped``: plan rows of unreadable files left out (``bad_audio`` lists them)."""
    start: int
    end: int
    rows: np.ndarray
    skipped: np.ndarray
    bad_audio: list[dict]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class ShardStore:
    def __init__(self, folder: str | Path, shard_windows: int = SHARD_WINDOWS):
        if shard_windows < 1:
            raise ValueError(f"shard_windows must be at least 1, not {shard_windows}")
        self.folder = Path(folder)
        self.shard_windows = int(shard_windows)

    def path(self, index: int) -> Path:
        return self.folder / f"shard_{index:05d}.npz"

    def save(self, index: int, n_rows: int, *, start: int, end: int, rows, skipped,
             bad_audio: list[dict], arrays: dict[str, np.ndarray]) -> None:
        """Write shard number ``index`` of a pass over a plan of ``n_rows`` rows (atomically);
        the other arguments are ``Shard``'s fields."""
        meta = {"start": start, "end": end, "bad_audio": bad_audio, "n_rows": n_rows, "names": sorted(arrays)}
        with atomic_path(self.path(index)) as tmp:
            np.savez(tmp, rows=np.asarray(rows, dtype=np.int64), skipped=np.asarray(skipped, dtype=np.int64),
                     meta=np.array(json.dumps(meta, sort_keys=True)),
                     **{f"out_{n}": np.asarray(a) for n, a in arrays.items()})

    def load(self, names: list[str], n_rows: int) -> list[Shard]:
        """The saved shards that continue one another from the first file on, for a plan of
        ``n_rows`` rows and these output names; stops at the first missing or unfitting one."""
        shards: list[Shard] = []
        end = 0
        while True:
            try:
                with np.load(self.path(len(shards)), allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    if (meta["start"] != end or meta["n_rows"] != n_rows
                            or meta["names"] != sorted(names)):
                        break
                    shard = Shard(start=meta["start"], end=meta["end"], rows=z["rows"],
                                  skipped=z["skipped"], bad_audio=meta["bad_audio"],
                                  arrays={n: z[f"out_{n}"] for n in names})
            except (OSError, KeyError, ValueError, zipfile.BadZipFile):
                break  # missing (the usual end), or unreadable: run it again
            every = np.concatenate([shard.rows, shard.skipped])
            if (len(every) and (every.min() < 0 or every.max() >= n_rows)) or any(
                    len(a) != len(shard.rows) for a in shard.arrays.values()):
                break
            shards.append(shard)
            end = shard.end
        return shards

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
