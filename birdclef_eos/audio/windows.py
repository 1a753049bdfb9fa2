"""Audio windows through the backbone runner: seeded positions, batched reads, bad files.

A window plan is a DataFrame with one row per window and at least ``path`` and ``read_s``
(where the 5-s read starts, TTA shift included). ``forward`` reads the windows file by file,
runs them through the runner in batches and returns one array per requested output. Given a
``shards`` store (birdclef_eos/audio/shards.py) it saves its progress as it goes and, on a later
call, continues after the last saved shard with the same bytes as one uninterrupted pass.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.audio.choices import BAD_AUDIO
from birdclef_eos.audio.decode import AudioError, load_window

WINDOW_S = 5.0


class FeatureError(RuntimeError):
    pass


def random_starts(duration_s: float, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` seeded window starts inside the file (0 when it is shorter than a window),
    rounded to the millisecond so that the index table is byte-stable."""
    room = max(0.0, float(duration_s) - WINDOW_S)
    return [round(float(s), 3) for s in rng.uniform(0.0, room, size=n)]


def read_file_windows(path: str, starts: list[float], sample_rate: int) -> np.ndarray:
    """All windows of one file; any decoding failure becomes an AudioError naming the file."""
    try:
        return np.stack([load_window(path, s, WINDOW_S, sample_rate) for s in starts])
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: cannot read audio ({type(exc).__name__}: {exc})") from exc


def check_finite(outputs: dict[str, np.ndarray], plan: pd.DataFrame) -> None:
    for name, arr in outputs.items():
        bad = ~np.all(np.isfinite(arr.reshape(len(arr), -1)), axis=1)
        if bad.any():
            row = plan.iloc[int(np.argmax(bad))]
            raise FeatureError(f"backbone output '{name}' is not finite for {row['path']} "
                               f"at {row['read_s']} s")


def forward(runner, plan: pd.DataFrame, names: list[str], batch_windows: int,
            on_bad_audio: str, sample_rate: int, desc: str = "windows",
            shards=None, allow_empty: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
    """Run every window of ``plan`` through ``runner.features`` (a ``BackboneOutputs``).

    Returns (kept: boolean mask over plan rows, {name: array over kept rows}, bad_audio list).
    With ``on_bad_audio='error'`` an unreadable file stops everything, naming the file.
    ``shards``: a ``ShardStore`` private to this plan, runner and settings; the pass starts after
    the shards already in it and saves a new one whenever a runner batch brings the unsaved windows
    to ``shards.shard_windows`` (shards end only where the batch buffer is empty, so the runner sees
    the same batches whether or not the pass was resumed).
    ``allow_empty``: a plan whose every file is unreadable gives empty arrays instead of an error
    (a cluster task's part of a plan, birdclef_eos/audio/cluster.py).
    """
    if on_bad_audio not in BAD_AUDIO:
        raise ValueError(f"on_bad_audio must be one of {BAD_AUDIO}, not '{on_bad_audio}'")
    plan = plan.reset_index(drop=True)
    kept = np.ones(len(plan), dtype=bool)
    bad_audio: list[dict] = []
    collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    buffer: list[np.ndarray] = []
    buffer_rows: list[int] = []
    done_rows: list[int] = []
    skipped_rows: list[int] = []
    groups = list(plan.groupby("path", sort=False).groups.items())
    first = 0  # files (path groups) done before this call
    resumed = shards.load(names, len(plan)) if shards is not None else []
    for shard in resumed:
        for n in names:
            collected[n].append(shard.arrays[n])
        done_rows.extend(shard.rows.tolist())
        skipped_rows.extend(shard.skipped.tolist())
        bad_audio.extend(shard.bad_audio)
        first = shard.end
    kept[skipped_rows] = False
    n_resumed = len(done_rows) + len(skipped_rows)
    saved = {"shards": len(resumed), "start": first, "parts": len(collected[names[0]]) if names else 0,
             "done": len(done_rows), "skipped": len(skipped_rows), "bad": len(bad_audio)}

    def save_shard(end: int):
        """Save what was done since the last shard (files ``saved['start']`` to ``end``)."""
        k = saved["parts"]
        shards.save(saved["shards"], len(plan), start=saved["start"], end=end, rows=done_rows[saved["done"]:],
                    skipped=skipped_rows[saved["skipped"]:], bad_audio=bad_audio[saved["bad"]:],
                    arrays={n: np.concatenate(collected[n][k:]) for n in names})
        saved.update(shards=saved["shards"] + 1, start=end, parts=len(collected[names[0]]),
                     done=len(done_rows), skipped=len(skipped_rows), bad=len(bad_audio))

    def flush():
        if not buffer:
            return
        out = runner.features(np.concatenate(buffer)).arrays()
        missing = [n for n in names if n not in out]
        if missing:
            raise FeatureError(f"the backbone runner returned no output named {missing}")
        chosen = {n: np.asarray(out[n]) for n in names}
        check_finite(chosen, plan.iloc[buffer_rows])
        for n in names:
            collected[n].append(chosen[n])
        bar.update(len(buffer_rows))
        done_rows.extend(buffer_rows)
        buffer.clear()
        buffer_rows.clear()

    with tqdm(total=len(plan), initial=n_resumed, desc=desc, unit="win", mininterval=2.0,
              postfix={"resumed": n_resumed} if resumed else None) as bar:
        for i in range(first, len(groups)):
            path, rows = groups[i]
            rows = list(rows)
            try:
                windows = read_file_windows(path, plan.loc[rows, "read_s"].tolist(), sample_rate)
            except AudioError as exc:
                if on_bad_audio == "error":
                    raise
                kept[rows] = False
                skipped_rows.extend(rows)
                bad_audio.append({"path": str(path), "error": str(exc)})
                bar.update(len(rows))
                continue
            buffer.append(windows)
            buffer_rows.extend(rows)
            if len(buffer_rows) >= batch_windows:
                flush()
                unsaved = len(done_rows) + len(skipped_rows) - saved["done"] - saved["skipped"]
                if shards is not None and unsaved >= shards.shard_windows:
                    save_shard(i + 1)
        flush()
    if not kept.any():
        if not allow_empty:
            raise FeatureError("no readable audio: every file in the plan was skipped")
        return kept, {n: np.zeros((0, 0), np.float32) for n in names}, bad_audio
    order = np.argsort(done_rows, kind="stable")  # rows came file by file: back to plan order
    arrays = {n: np.concatenate(collected[n])[order] for n in names}
    return kept, arrays, bad_audio
