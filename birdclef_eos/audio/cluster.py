"""A ``forward`` pass handed to a Dask distributed cluster, with the bytes of the in-process pass.

`forward_on_cluster(client, open_runner, plan, ...)` cuts the plan's files into tasks at the
places where the in-process ``forward`` (windows.py) has an empty batch buffer: it simulates the
buffer from the plan's row counts (a flush when ``batch_windows`` windows wait, a cut once a
task holds ``shard_windows``), so each task starts with an empty buffer, feeds its runner the same
batches as the in-process pass and returns the same bytes. Each worker opens one backbone runner
(``open_runner()``, kept per worker process for the run's ``token``); tasks keep today's shards,
threads per worker (the runner's) and batch sizes.

Resumable and fault tolerant: the caller's ``ShardStore`` receives each finished task as one shard
(in plan order, as soon as the tasks before it are in), so a killed run continues from its last
contiguous shard, in-process or on a cluster. A task whose worker dies is rescheduled by the Dask
scheduler on another worker (its `distributed.scheduler.allowed-failures`, 3 by default), so the
shard it held is redone, not lost.

Limit: the simulation assumes every file is readable. With ``on_bad_audio: skip`` and a file that
cannot be read, the in-process pass's later flushes shift by that file's windows and the cluster's
do not, so rows batched differently after it may differ in their last bits (the skipped file and
its listing are the same). With no unreadable file the bytes are identical
(tests/birdclef_eos/audio/test_cluster.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from birdclef_eos.audio.windows import forward

_RUNNERS: dict[str, object] = {}   # per worker process: the run's token -> its backbone runner


def file_groups(plan: pd.DataFrame) -> list[np.ndarray]:
    """Plan row positions per file, in the order ``forward`` reads the files."""
    plan = plan.reset_index(drop=True)
    return [np.asarray(rows) for _, rows in plan.groupby("path", sort=False).groups.items()]


def task_ranges(sizes: list[int], batch_windows: int, shard_windows: int) -> list[tuple[int, int]]:
    """Files [start, end) per task, for files of ``sizes`` windows each: a cut only right after a
    simulated flush (``forward``'s buffer empty) and once the task holds ``shard_windows`` windows."""
    if batch_windows < 1 or shard_windows < 1:
        raise ValueError(f"batch_windows ({batch_windows}) and shard_windows ({shard_windows}) must be at least 1")
    ranges, start, buffered, unsaved = [], 0, 0, 0
    for i, n in enumerate(sizes):
        buffered += int(n)
        if buffered >= batch_windows:
            unsaved += buffered
            buffered = 0
            if unsaved >= shard_windows:
                ranges.append((start, i + 1))
                start, unsaved = i + 1, 0
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def run_task(open_runner, token: str, part: pd.DataFrame, names: list[str], batch_windows: int,
             on_bad_audio: str, sample_rate: int):
    """On a worker: ``forward`` over one task's rows with this worker's runner (opened once per token)."""
    if token not in _RUNNERS:
        _RUNNERS.clear()  # one runner per worker: a new run's replaces the old one
        _RUNNERS[token] = open_runner()
    return forward(_RUNNERS[token], part, names, batch_windows, on_bad_audio, sample_rate,
                   desc="task", allow_empty=True)


def forward_on_cluster(client, open_runner, plan: pd.DataFrame, names: list[str], batch_windows: int,
                       on_bad_audio: str, sample_rate: int, *, token: str, shards,
                       progress=None) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
    """``forward``'s result, computed by the workers of the Dask ``client``.

    ``open_runner``: a picklable callable returning a backbone runner (``features(windows)``);
    ``token``: names the run (the caller's shard key), so a worker reuses its runner across tasks
    of one run and never across runs; ``shards``: a ``ShardStore`` (the pass resumes after its
    contiguous shards and adds one per task); ``progress``: called with the windows of each
    finished task."""
    from distributed import as_completed

    from birdclef_eos.audio.windows import FeatureError

    plan = plan.reset_index(drop=True)
    groups = file_groups(plan)
    resumed = shards.load(names, len(plan))
    first = resumed[-1].end if resumed else 0
    ranges = [(first + a, first + b) for a, b in
              task_ranges([len(g) for g in groups[first:]], batch_windows, shards.shard_windows)]
    parts = []
    for start, end in ranges:
        rows = np.sort(np.concatenate(groups[start:end]))
        parts.append(rows)
    futures = {client.submit(run_task, open_runner, token, plan.iloc[rows].reset_index(drop=True), names,
                             batch_windows, on_bad_audio, sample_rate, pure=False): k
               for k, rows in enumerate(parts)}
    finished: dict[int, tuple] = {}
    saved = len(resumed)
    next_k = 0
    try:
        for future in as_completed(futures):
            k = futures[future]
            kept, arrays, bad = future.result()   # raises the task's error (bad audio with `error`, ...)
            rows = parts[k]
            finished[k] = (rows[kept], rows[~kept], arrays, bad)
            if progress is not None:
                progress(len(rows))
            while next_k in finished:   # save the contiguous prefix as shards
                done, skipped, arrays_k, bad_k = finished[next_k]
                start, end = ranges[next_k]
                shards.save(saved, len(plan), start=start, end=end, rows=done, skipped=skipped,
                            bad_audio=bad_k, arrays={n: arrays_k[n] if len(done) else
                                                     np.zeros((0, 0), np.float32) for n in names})
                saved += 1
                next_k += 1
    finally:
        for future in futures:
            future.cancel()
    done_rows = [s.rows for s in resumed] + [finished[k][0] for k in range(len(parts))]
    skipped_rows = [s.skipped for s in resumed] + [finished[k][1] for k in range(len(parts))]
    outputs = [s.arrays for s in resumed] + [finished[k][2] for k in range(len(parts))]
    bad_audio = [b for s in resumed for b in s.bad_audio] + [b for k in range(len(parts)) for b in finished[k][3]]
    kept = np.ones(len(plan), dtype=bool)
    skipped = np.concatenate(skipped_rows).astype(np.int64) if skipped_rows else np.zeros(0, np.int64)
    kept[skipped] = False
    if not kept.any():
        raise FeatureError("no readable audio: every file in the plan was skipped")
    rows = np.concatenate([r for r in done_rows if len(r)]).astype(np.int64)
    order = np.argsort(rows, kind="stable")
    arrays = {n: np.concatenate([o[n] for o, r in zip(outputs, done_rows) if len(r)])[order] for n in names}
    return kept, arrays, bad_audio

