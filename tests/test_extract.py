"""The extract stage on a hand-made index and a fake backbone: windows, shifts, bad audio."""
import json

import numpy as np
import pytest

from stages import extract
from birdclef_eos.data import features as store
from birdclef_eos.audio.decode import AudioError
from tests.probe_fakes import FakeBackbone, make_index

PARAMS = {
    "extract": {"windows_per_recording": 2, "tta_shifts": [-1.0, 0.0, 1.0], "on_bad_audio": "error",
                "batch_windows": 8, "seed": 0},
    "backbone": {"name": "fake", "chunk_mapping": "center", "batch_size": 4, "threads": 1, "frontend": "graph"},
    "dataset": {"sample_rate": 32000},
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
        assert np.allclose(fake.features(x)["block_02"][0], arrays["block_02"][i], atol=1e-5)


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
            out["embedding"][-1, 0] = np.nan
            return out
    with pytest.raises(RuntimeError, match="embedding.*flac"):
        extract.run(PARAMS, runner=NanBackbone())


def test_same_params_same_bytes(workdir):
    extract.run(PARAMS, runner=FakeBackbone())
    first = {p.name: p.read_bytes() for p in (workdir / "data/features").iterdir()}
    extract.run(PARAMS, runner=FakeBackbone())
    second = {p.name: p.read_bytes() for p in (workdir / "data/features").iterdir()}
    assert first == second
