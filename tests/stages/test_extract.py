"""The extract stage on a hand-made index and a fake backbone: windows, shifts, bad audio."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from stages import extract
from birdclef_eos.data import features as store
from birdclef_eos.audio.decode import AudioError
from tests.fakes.probe_fakes import FakeBackbone, make_index
from tests.fakes.runtime import runtime

PARAMS = {
    "extract": {"windows_per_recording": 2, "tta_shifts": [-1.0, 0.0, 1.0], "labelled_shifts": None,
                "on_bad_audio": "error", "batch_windows": 8, "seed": 0, "logits": "all"},
    "backbone": {"name": "fake", "chunk_mapping": "center", "batch_size": 4, "threads": 1, "frontend": "graph"},
    "dataset": {"sample_rate": 32000},
    "runtime": runtime(),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_index(tmp_path, n_species=2, recordings=2, soundscapes=2, tests=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def with_extract(**changes):
    return {**PARAMS, "extract": {**PARAMS["extract"], **changes}}


def test_extract_writes_every_window_once(workdir):
    out = extract.run(PARAMS, runner=FakeBackbone())
    windows, arrays, meta = store.load("data/features")
    # 4 recordings x 2 focal windows; 2 training soundscapes x 3 chunks; 1 test x 3 chunks x 3 shifts
    assert out.windows == {"focal": 8, "labelled": 3, "unlabelled": 3, "test": 9}
    assert sorted(arrays) == ["block_00", "block_01", "block_02", "embedding", "logits"]  # every block
    assert arrays["logits"].dtype == np.float16 and arrays["block_02"].dtype == np.float32
    assert all(len(a) == len(windows) == 23 for a in arrays.values())
    assert meta["blocks"] == [0, 1, 2] and meta["bad_audio"] == []
    test = windows[windows["source"] == "test"]
    assert sorted(test["shift_s"].unique()) == [-1.0, 0.0, 1.0]
    assert (test.groupby("row_id").size() == 3).all()
    assert np.allclose(test["start_s"] - test["shift_s"], 5 * test["chunk"])  # start includes the shift
    assert (windows.loc[windows["split"] != "test", "shift_s"] == 0).all()
    labelled = windows[windows["split"] == "labelled"]
    assert (labelled["labels"] == "sp0;sp1").all() and (test["labels"] == "").all()
    focal = windows[windows["source"] == "focal"]
    assert (focal["labels"] == focal["primary_label"]).all() and (focal["start_s"] <= 2.0).all()


def test_rows_match_their_audio(workdir):
    extract.run(PARAMS, runner=FakeBackbone())
    windows, arrays, _ = store.load("data/features")
    fake = FakeBackbone()
    from birdclef_eos.audio.decode import load_window
    for i in [0, 9, len(windows) - 1]:
        row = windows.iloc[i]
        path = (workdir / "audio" / (row["file_id"].replace("/XC", "_") + ".flac"))
        x = load_window(path, row["start_s"], 5.0, 32000)[None]
        assert np.allclose(fake.features(x).blocks["block_02"][0], arrays["block_02"][i], atol=1e-5)


def test_every_block_is_stored_whatever_the_probe_chose(workdir):
    """The head's block choice is train's (train.blocks): extract stores every exposed block."""
    (workdir / "models/probe_selected.json").write_text(json.dumps({"blocks": [1]}))
    assert extract.run(PARAMS, runner=FakeBackbone()).blocks == [0, 1, 2]
    (workdir / "models/probe_selected.json").unlink()
    assert extract.run(PARAMS, runner=FakeBackbone()).blocks == [0, 1, 2]


def test_corrupt_file_stops_or_is_skipped_and_listed(workdir):
    bad = workdir / "audio" / "sp1_0.flac"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="sp1_0.flac"):
        extract.run(PARAMS, runner=FakeBackbone())
    assert not (workdir / "data/features").exists()  # nothing half-written
    out = extract.run(with_extract(on_bad_audio="skip"), runner=FakeBackbone())
    windows, arrays, meta = store.load("data/features")
    assert [b["path"] for b in meta["bad_audio"]] == [str(bad)]
    assert len(windows) == 21 and "sp1/XC0" not in set(windows["file_id"])
    assert all(np.isfinite(a).all() for a in arrays.values()) and out.bad_audio


def test_nan_features_are_an_error_naming_the_file(workdir):
    class NanBackbone(FakeBackbone):
        def features(self, windows):
            out = super().features(windows)
            out.embedding[-1, 0] = np.nan
            return out
    with pytest.raises(RuntimeError, match="embedding.*flac"):
        extract.run(PARAMS, runner=NanBackbone())


def test_same_params_same_bytes(workdir):
    extract.run(PARAMS, runner=FakeBackbone())
    first = {p.name: p.read_bytes() for p in (workdir / "data/features").iterdir()}
    extract.run(PARAMS, runner=FakeBackbone())
    second = {p.name: p.read_bytes() for p in (workdir / "data/features").iterdir()}
    assert first == second


class Killed(RuntimeError):
    pass


class KilledAfter(FakeBackbone):
    """A runner that records its batch sizes and dies on call number ``die_at`` (a killed stage)."""

    def __init__(self, die_at: int | None = None, log: list | None = None):
        super().__init__()
        self.die_at, self.log = die_at, log if log is not None else []

    def features(self, windows):
        if self.die_at is not None and self.calls + 1 >= self.die_at:
            raise Killed(f"killed before call {self.die_at}")
        self.log.append(len(windows))
        return super().features(windows)


def feature_bytes(workdir):
    return {p.name: p.read_bytes() for p in sorted((workdir / "data/features").iterdir())}


@pytest.mark.parametrize("bad_file", [None, "sp0_1.flac", "SC_1.flac"])
def test_a_killed_extraction_resumes_with_the_same_bytes(workdir, monkeypatch, bad_file):
    """Batches of 2 windows, a shard every 4: killed on the 5th runner call, the second run
    continues after the two saved shards and writes what an uninterrupted run writes."""
    monkeypatch.setattr(extract, "SHARD_WINDOWS", 4)
    params = with_extract(batch_windows=2, on_bad_audio="skip")
    if bad_file:
        (workdir / "audio" / bad_file).write_bytes(b"not audio at all")
    whole = []
    extract.run(params, runner=KilledAfter(log=whole))
    expected = feature_bytes(workdir)
    shards = workdir / ".dvc/tmp/extract-shards"
    assert not shards.exists()  # removed after success

    before = []
    with pytest.raises(Killed):
        extract.run(params, runner=KilledAfter(die_at=5, log=before))
    saved = sorted(p.name for p in shards.rglob("shard_*.npz"))
    assert saved == ["shard_00000.npz", "shard_00001.npz"]
    after = []
    resumed = KilledAfter(log=after)
    extract.run(params, runner=resumed)
    assert 0 < len(after) < len(whole)  # it did not start over
    assert before[:len(whole) - len(after)] + after == whole  # the runner saw the same batches
    assert feature_bytes(workdir) == expected
    assert not shards.exists()


def test_shards_of_other_settings_are_not_resumed(workdir):
    from birdclef_eos.data.plans import window_plan

    plan = window_plan("data/index", 2, 0, [-1.0, 0.0, 1.0])
    names = ["block_00", "embedding", "logits"]
    key = extract.shard_key(PARAMS, "cpu", plan, names)
    assert extract.shard_key(PARAMS, "cpu", plan, names) == key
    assert extract.shard_key({**PARAMS, "backbone": {**PARAMS["backbone"], "batch_size": 8}}, "cpu", plan, names) != key
    assert extract.shard_key(with_extract(batch_windows=16), "cpu", plan, names) != key
    assert extract.shard_key(PARAMS, "cuda", plan, names) != key
    assert extract.shard_key(PARAMS, "cpu", plan, names[:2]) != key
    audio = workdir / "audio" / "SC_0.flac"
    st = audio.stat()
    os.utime(audio, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, touched
    assert extract.shard_key(PARAMS, "cpu", plan, names) != key


def test_shards_change_no_batch_and_no_byte(workdir, tmp_path):
    """forward with a shard store gives the arrays of forward without one (shards end only where
    the batch buffer is empty)."""
    from birdclef_eos.audio.shards import ShardStore
    from birdclef_eos.audio.windows import forward
    from birdclef_eos.data.plans import window_plan

    plan = window_plan("data/index", 2, 0, [-1.0, 0.0, 1.0])
    names = ["block_01", "embedding"]
    plain, sharded = [], []
    _, a, _ = forward(KilledAfter(log=plain), plan, names, 3, "error", 32000)
    _, b, _ = forward(KilledAfter(log=sharded), plan, names, 3, "error", 32000,
                      shards=ShardStore(tmp_path / "shards", shard_windows=1))
    assert plain == sharded and len(list((tmp_path / "shards").iterdir())) >= 2
    assert all(a[n].tobytes() == b[n].tobytes() for n in names)


def test_a_corrupt_meta_json_names_the_file(workdir):
    from birdclef_eos.io.files import FileFormatError

    extract.run(PARAMS, runner=FakeBackbone())
    (workdir / "data/features/meta.json").write_text('{"blocks": [0, 1')
    with pytest.raises(FileFormatError, match=r"data/features/meta.json: not valid JSON \(written by the extract"):
        store.load("data/features")


def test_killed_after_the_last_shard_resumes_without_the_runner(workdir, monkeypatch):
    """Killed while writing data/features/: every window is in a shard, the rerun runs nothing."""
    monkeypatch.setattr(extract, "SHARD_WINDOWS", 1)
    params = with_extract(batch_windows=2)
    extract.run(params, runner=FakeBackbone())
    expected = feature_bytes(workdir)

    def killed(*args, **kwargs):
        raise Killed("killed while saving")
    with monkeypatch.context() as m:
        m.setattr(extract.store, "save", killed)
        with pytest.raises(Killed):
            extract.run(params, runner=FakeBackbone())
    idle = FakeBackbone()
    extract.run(params, runner=idle)
    assert idle.calls == 0 and feature_bytes(workdir) == expected


def test_logits_keep_only_what_a_later_stage_reads(workdir):
    """`competition`: one column per species.csv class; `none`: no logits at all."""
    species = pd.DataFrame({"label_idx": [0, 1, 2], "primary_label": ["sp0", "sp1", "sp2"],
                            "scientific_name": ["Alpha one", "Beta two", "Gamma three"]})
    species.to_csv(workdir / "data/index/species.csv", index=False)
    names = species["scientific_name"].tolist()
    classes = [f"{names[0]}_First", "Othergenus alpha_Other", f"{names[1].split()[0]} zzz_Cousin"]
    (workdir / "models/backbone.json").write_text(json.dumps({"classes": classes}))

    class ThreeLogits(FakeBackbone):
        def features(self, windows):
            out = super().features(windows)
            out.logits = np.stack([out.logits[:, 0], out.logits[:, 0] + 1, out.logits[:, 0] + 2], axis=1)
            return out

    extract.run(with_extract(logits="competition"), runner=ThreeLogits())
    _, arrays, meta = store.load("data/features")
    assert arrays["logits"].shape[1] == len(species) and arrays["logits"].dtype == np.float16
    assert meta["logits"]["by_class"][species["primary_label"].iloc[0]] == "species"
    assert meta["logits"]["sources"] == {"species": 1, "genus": 1, "none": 1}
    assert arrays["logits"][:, 2].tolist() == [0.0] * len(arrays["logits"])  # no source: 0
    extract.run(with_extract(logits="none"), runner=ThreeLogits())
    _, arrays, meta = store.load("data/features")
    assert "logits" not in arrays and meta["logits"] == {"mode": "none"}


def test_two_local_workers_write_the_in_process_bytes(workdir, monkeypatch, two_workers):
    """The stage on two Dask workers (the session's local cluster as `runtime.scheduler`,
    tests/conftest.py; one perch_tiny runner per worker) writes the bytes of the in-process run, tasks of 4 windows each."""
    import shutil

    from tests.fakes.backbone_fixtures import probed_perch_tiny

    probed, spec, blocks = probed_perch_tiny()
    for src, dst in ((probed, "backbone_probed.onnx"), (spec, "backbone.json"), (blocks, "blocks.json")):
        shutil.copy(src, workdir / "models" / dst)
    monkeypatch.setattr(extract, "SHARD_WINDOWS", 4)
    params = {**with_extract(batch_windows=3), "runtime": runtime(workers=1, scheduler=None, provider="cpu")}
    params["backbone"] = {**params["backbone"], "batch_size": 2}
    extract.run(params)
    expected = feature_bytes(workdir)
    extract.run({**params, "runtime": two_workers.runtime(provider="cpu")})
    assert feature_bytes(workdir) == expected
