"""Extraction on a Dask cluster: the bytes of the in-process pass, and a dead worker's task redone."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd
import pytest

from birdclef_eos.audio.cluster import forward_on_cluster, task_ranges
from birdclef_eos.io.cluster import open_client
from birdclef_eos.audio.shards import ShardStore
from birdclef_eos.audio.windows import forward
from birdclef_eos.backbone.runner import Backbone
from tests.fakes.backbone_fixtures import probed_perch_tiny
from tests.fakes.probe_fakes import tone, write_flac

SR = 32_000
NAMES = ["block_03", "block_20", "embedding", "logits"]


def make_plan(folder: Path, files: int = 7) -> pd.DataFrame:
    rows = []
    for f in range(files):
        path = folder / f"rec_{f}.flac"
        write_flac(path, tone(300 + 200 * f, 11.0, seed=f), SR)
        for start in (0.0, 3.0, 6.0)[: 1 + f % 3]:   # 1 to 3 windows per file
            rows.append({"path": str(path), "read_s": start})
    return pd.DataFrame(rows)


def open_runner():
    probed, spec, blocks = probed_perch_tiny()
    return functools.partial(Backbone, probed, spec, blocks, threads=1, batch_size=2, chunk_mapping="center",
                             input_rate=SR, progress=False)


class DiesOnce:
    """A runner factory whose runner kills its worker process on its first batch anywhere (a marker
    file makes it once per test); the scheduler must hand that task to another worker."""

    def __init__(self, make, marker: str):
        self.make, self.marker = make, marker

    def __call__(self):
        runner = self.make()
        marker = self.marker
        features = runner.features

        def dying(windows):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return features(windows)
            os.close(fd)
            os._exit(1)

        runner.features = dying
        return runner


def test_task_ranges_cut_only_where_the_buffer_is_empty():
    # batches of 3, tasks of at least 4: file sizes 2,2 -> flush at 4 (task), 1,1,1 -> flush at 3, 3 -> flush (task)
    assert task_ranges([2, 2, 1, 1, 1, 3, 1], 3, 4) == [(0, 2), (2, 6), (6, 7)]
    assert task_ranges([], 3, 4) == []
    with pytest.raises(ValueError, match="batch_windows"):
        task_ranges([1], 0, 4)


@pytest.fixture(scope="module")
def client():
    with open_client(None, 2) as c:
        yield c


def test_two_workers_give_the_in_process_bytes(tmp_path, client):
    plan = make_plan(tmp_path)
    kept, ref, bad = forward(open_runner()(), plan, NAMES, 3, "error", SR)
    got_kept, got, got_bad = forward_on_cluster(client, open_runner(), plan, NAMES, 3, "error", SR,
                                                token="t1", shards=ShardStore(tmp_path / "s", 3))
    assert len(list((tmp_path / "s").iterdir())) >= 3   # several tasks, one shard each
    assert (kept == got_kept).all() and bad == got_bad == []
    assert all(ref[n].tobytes() == got[n].tobytes() for n in NAMES)
    # the comparison can fail: other batch sizes move the last bits of some output
    moved = forward(open_runner()(), plan, NAMES, 1, "error", SR)[1]
    assert not all(ref[n].tobytes() == moved[n].tobytes() for n in NAMES)
    # and a second run resumes from the shards without a single task
    again = forward_on_cluster(client, None, plan, NAMES, 3, "error", SR, token="t1",
                               shards=ShardStore(tmp_path / "s", 3))[1]
    assert all(ref[n].tobytes() == again[n].tobytes() for n in NAMES)


def test_one_worker_runs_in_process():
    with open_client(None, 1) as c:
        assert c is None
    with pytest.raises(ValueError, match="runtime.scheduler / runtime.workers"):
        open_client(None, 0)


def test_a_dead_workers_task_is_redone(tmp_path, client):
    plan = make_plan(tmp_path)
    ref = forward(open_runner()(), plan, NAMES, 3, "error", SR)[1]
    marker = tmp_path / "died"
    got = forward_on_cluster(client, DiesOnce(open_runner(), str(marker)), plan, NAMES, 3, "error", SR,
                             token="t2", shards=ShardStore(tmp_path / "s", 3))[1]
    assert marker.exists()   # a worker did die
    assert all(ref[n].tobytes() == got[n].tobytes() for n in NAMES)
