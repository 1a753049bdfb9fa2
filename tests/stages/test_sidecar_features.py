"""The sidecar's features: in real-data mode (the perch_tiny fixture stands in for
Perch v2) BirdNET V2.4 runs over every window the main extraction wrote, one row per main window in
the same order; in the default mode (the backbone already is BirdNET) nothing is extracted twice:
the store only points to the main embedding."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.audio.cluster import forward_on_cluster
from birdclef_eos.audio.decode import load_window
from birdclef_eos.backbone import birdnet
from birdclef_eos.backbone.config import SidecarExtract
from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.data import features as store
from stages import extract, sidecar_features
from stages.params import load_params
from tests.fakes.backbone_fixtures import probed_perch_tiny
from tests.fakes.probe_fakes import SR, FakeBackbone, make_index

REPO = load_params()
BIRDNET_WIDTH = 1024


def params(backbone: str) -> dict:
    return {"extract": {"windows_per_recording": 1, "tta_shifts": [-1.0, 0.0], "labelled_shifts": None,
                        "on_bad_audio": "error", "batch_windows": 8, "seed": 0, "logits": "all"},
            "backbone": {**REPO["backbone"], "name": backbone, "chunk_mapping": "center", "batch_size": 4,
                         "threads": 1, "frontend": "graph"},
            "dataset": {"sample_rate": SR}, "runtime": REPO["runtime"],
            "sidecar": {"extract": {**REPO["sidecar"]["extract"], "batch_windows": 8, "threads": 1}}}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    # 2 focal windows, 3 labelled + 3 unlabelled chunks, 3 test chunks x 2 shifts: 14 windows
    make_index(tmp_path, n_species=2, recordings=1, soundscapes=2, tests=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_perch_mode_extracts_birdnet_over_the_main_windows(workdir):
    probed, spec, blocks = probed_perch_tiny()
    shutil.copyfile(blocks, workdir / "models" / "blocks.json")
    perch = Backbone(probed, spec, blocks, threads=1, batch_size=4, chunk_mapping="center", input_rate=SR,
                     progress=False)
    extract.run(params("perch_tiny"), runner=perch)
    main_windows, main_arrays, _ = store.load("data/features", names=["embedding"])

    out = sidecar_features.run(params("perch_tiny"))
    windows, arrays, meta = store.load("data/sidecar_features")
    assert out.mode == "extract" and meta["backbone"] == "birdnet_v24" and meta["main_backbone"] == "perch_tiny"
    pd.testing.assert_frame_equal(windows, main_windows)  # one row per main window, same order
    assert sorted(arrays) == ["embedding"] and arrays["embedding"].shape == (len(main_windows), BIRDNET_WIDTH)
    assert main_arrays["embedding"].shape[1] != BIRDNET_WIDTH  # the main store holds perch_tiny's embedding
    assert np.isfinite(arrays["embedding"]).all() and arrays["embedding"].dtype == np.float32
    assert all(r["top_class_onnx"] == r["top_class_tflite"] for r in out.equivalence.values())

    # rows are BirdNET on exactly their window: a focal one and a shifted test one, read directly
    prepared = birdnet.prepare(REPO["backbone"]["birdnet"], __import__("pathlib").Path(
        REPO["runtime"]["cache_dir"]).expanduser())
    p = params("perch_tiny")
    runner = sidecar_features.open_birdnet(SidecarExtract.model_validate(p["sidecar"]["extract"]), p,
        p["runtime"]["provider"], prepared)
    index = pd.read_csv("data/index/soundscapes.csv").set_index("soundscape_id")["path"]
    recs = pd.read_csv("data/index/recordings.csv").set_index("recording_id")["path"]
    for i in [0, len(windows) - 1]:
        row = windows.iloc[i]
        path = recs[row.file_id] if row.source == "focal" else index[row.file_id]
        direct = runner.features(load_window(path, row.start_s, 5.0, SR)[None]).embedding[0]
        assert np.allclose(direct, arrays["embedding"][i], atol=1e-4), (i, row.source, row.shift_s)


def test_default_mode_reuses_the_main_embedding(workdir):
    extract.run(params("birdnet_v24"), runner=FakeBackbone())
    out = sidecar_features.run(params("birdnet_v24"))
    assert out.mode == "reuse" and out.equivalence is None
    assert sorted(p.name for p in (workdir / "data/sidecar_features").iterdir()) == ["meta.json"]  # no second copy
    meta = json.loads((workdir / "data/sidecar_features/meta.json").read_text())
    assert meta["reuses"] == "data/features" and meta["n_windows"] == 14
    windows, arrays, _ = store.load_pointed("data/sidecar_features", "data/features", ["embedding"])
    main_windows, main_arrays, _ = store.load("data/features", names=["embedding"])
    pd.testing.assert_frame_equal(windows, main_windows)
    assert np.array_equal(arrays["embedding"], main_arrays["embedding"])

    # a main store that changed after the pointer was written is caught, naming the file
    extract.run({**params("birdnet_v24"), "extract": {**params("birdnet_v24")["extract"], "seed": 1}},
                runner=FakeBackbone())
    with pytest.raises(store.FeatureStoreError, match="windows.csv is not the file it points to"):
        store.load_pointed("data/sidecar_features", "data/features", ["embedding"])


class Killed(RuntimeError):
    pass


class KilledAfter:
    """BirdNET's runner, logging its batch sizes and dying on call number ``die_at`` (a killed stage)."""

    def __init__(self, inner, die_at: int | None = None, log: list | None = None):
        self.inner, self.die_at, self.log, self.calls = inner, die_at, log if log is not None else [], 0

    def features(self, windows):
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise Killed(f"killed on call {self.die_at}")
        self.log.append(len(windows))
        return self.inner.features(windows)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def sidecar_bytes(workdir):
    return {p.name: p.read_bytes() for p in sorted((workdir / "data/sidecar_features").iterdir())}


def extracted_in_small_shards(workdir, monkeypatch) -> dict:
    """Real-data mode with perch_tiny extracted, sidecar shards of 4 windows and BirdNET batches of
    2: the params both shard tests run sidecar_features with."""
    monkeypatch.setattr(sidecar_features, "SHARD_WINDOWS", 4)
    probed, spec, blocks = probed_perch_tiny()
    shutil.copyfile(blocks, workdir / "models" / "blocks.json")
    perch = Backbone(probed, spec, blocks, threads=1, batch_size=4, chunk_mapping="center", input_rate=SR,
                     progress=False)
    p = params("perch_tiny")
    p["sidecar"]["extract"]["batch_windows"] = 2
    extract.run(p, runner=perch)
    return p


def test_a_killed_sidecar_extraction_resumes_with_the_same_bytes(workdir, monkeypatch):
    """Real-data mode, BirdNET batches of 2 windows, a shard every 4: killed on the 4th runner call,
    the second run continues after the saved shard and writes what an uninterrupted run writes."""
    p = extracted_in_small_shards(workdir, monkeypatch)
    prepared = birdnet.prepare(REPO["backbone"]["birdnet"], __import__("pathlib").Path(
        REPO["runtime"]["cache_dir"]).expanduser())
    birdnet_runner = sidecar_features.open_birdnet(SidecarExtract.model_validate(p["sidecar"]["extract"]), p,
        p["runtime"]["provider"], prepared)

    whole = []
    sidecar_features.run(p, runner=KilledAfter(birdnet_runner, log=whole))
    expected = sidecar_bytes(workdir)
    assert whole == [2, 3, 3, 6]  # runner calls (batches end at files); a shard after calls 2 and 4
    shards = workdir / ".dvc/tmp/sidecar-shards"
    assert not shards.exists()  # removed after success

    before = []
    with pytest.raises(Killed):
        sidecar_features.run(p, runner=KilledAfter(birdnet_runner, die_at=4, log=before))
    assert sorted(q.name for q in shards.rglob("shard_*.npz")) == ["shard_00000.npz"]
    after = []
    sidecar_features.run(p, runner=KilledAfter(birdnet_runner, log=after))
    assert 0 < len(after) < len(whole)  # it did not start over
    assert before[:len(whole) - len(after)] + after == whole  # the runner saw the same batches
    assert sidecar_bytes(workdir) == expected
    assert not shards.exists()


def test_two_local_workers_write_the_in_process_bytes(workdir, monkeypatch, two_workers):
    """Real-data mode on two Dask workers (the session's local cluster as `runtime.scheduler`,
    tests/conftest.py): the shards (4 windows each, BirdNET batches of 2)
    are tasks of audio/cluster.py, one BirdNET runner per worker; the store is the in-process one."""
    p = extracted_in_small_shards(workdir, monkeypatch)
    sidecar_features.run({**p, "runtime": {**p["runtime"], "workers": 1}})
    expected = sidecar_bytes(workdir)
    shutil.rmtree(workdir / "data/sidecar_features")
    tasks = []

    def on_cluster(client, open_runner, plan, *args, shards, **kw):   # the cluster path did run, in tasks
        result = forward_on_cluster(client, open_runner, plan, *args, shards=shards, **kw)
        tasks.append((len(plan), len(list(shards.folder.glob("shard_*.npz")))))
        return result

    monkeypatch.setattr(sidecar_features, "forward_on_cluster", on_cluster)
    out = sidecar_features.run({**p, "runtime": {**p["runtime"], **two_workers.runtime()}})
    assert len(tasks) == 1 and tasks[0][0] == 14 and tasks[0][1] >= 2   # 14 windows, two tasks or more
    assert out.mode == "extract" and sidecar_bytes(workdir) == expected
    assert not (workdir / ".dvc/tmp/sidecar-shards").exists()   # removed after success, as in-process
