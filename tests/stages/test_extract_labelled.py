"""The labelled soundscape chunks at extra shifts (stage `extract_labelled`) on a hand-made index and a
fake backbone: the main extraction is untouched by them, the shifted rows are the right windows."""
import numpy as np
import pytest

from birdclef_eos.audio.decode import load_window
from birdclef_eos.data import features as store
from stages import extract, extract_labelled
from tests.fakes.probe_fakes import FakeBackbone, make_index
from tests.fakes.runtime import runtime

PARAMS = {
    "extract": {"windows_per_recording": 2, "tta_shifts": [-1.0, 0.0, 1.0], "labelled_shifts": [-1.0, 1.0],
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


def with_shifts(shifts):
    return {**PARAMS, "extract": {**PARAMS["extract"], "labelled_shifts": shifts}}


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_main_extraction_has_the_same_bytes_whatever_the_labelled_shifts(workdir):
    """null (none), and a setting that reads labelled chunks at two more shifts: data/features is the
    same, byte for byte, and holds its labelled chunks at shift 0 only (the training rows as before)."""
    extract.run(with_shifts(None), runner=FakeBackbone())
    before = folder_bytes(workdir / "data/features")
    extract_labelled.run(with_shifts(None), runner=FakeBackbone())
    extract.run(with_shifts([-1.0, 1.0]), runner=FakeBackbone())
    extract_labelled.run(with_shifts([-1.0, 1.0]), runner=FakeBackbone())
    assert folder_bytes(workdir / "data/features") == before
    windows, _, _ = store.load("data/features")
    assert (windows.loc[windows["split"] == "labelled", "shift_s"] == 0.0).all()


def test_null_writes_an_empty_store(workdir):
    out = extract_labelled.run(with_shifts(None), runner=FakeBackbone())
    windows, arrays, meta = store.load("data/features_labelled")
    assert out.n_windows == 0 and len(windows) == 0 and arrays == {} and meta["labelled_shifts"] == []


def test_every_labelled_chunk_at_every_shift_and_its_audio(workdir):
    out = extract_labelled.run(with_shifts([-1.0, 0.0, 1.0]), runner=FakeBackbone())  # 0 is the main store's
    windows, arrays, meta = store.load("data/features_labelled")
    assert out.shifts == [-1.0, 1.0] and meta["labelled_shifts"] == [-1.0, 1.0]
    # one labelled soundscape (SC_0) x 3 chunks x 2 shifts
    assert out.windows == {"-1": 3, "1": 3} and len(windows) == 6
    assert set(windows["split"]) == {"labelled"} and set(windows["source"]) == {"soundscape"}
    assert sorted(arrays) == ["block_00", "block_01", "block_02", "embedding", "logits"]
    assert np.allclose(windows["start_s"] - windows["shift_s"], 5 * windows["chunk"])
    assert (windows.groupby("row_id")["shift_s"].apply(sorted) == pytest.approx([-1.0, 1.0])).all()
    fake = FakeBackbone()
    for i in range(len(windows)):
        row = windows.iloc[i]
        x = load_window(workdir / "audio" / f"{row['file_id']}.flac", row["start_s"], 5.0, 32000)[None]
        assert np.allclose(fake.features(x).embedding[0], arrays["embedding"][i], atol=1e-5)


def test_same_params_same_bytes(workdir):
    extract_labelled.run(PARAMS, runner=FakeBackbone())
    first = folder_bytes(workdir / "data/features_labelled")
    extract_labelled.run(PARAMS, runner=FakeBackbone())
    assert folder_bytes(workdir / "data/features_labelled") == first
    assert not (workdir / ".dvc/tmp/labelled-shards").exists()
