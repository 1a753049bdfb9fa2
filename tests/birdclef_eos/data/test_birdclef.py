"""The competition-layout reader: a valid folder indexes; each malformed case names file, row, column."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdclef_eos.data import birdclef
from birdclef_eos.data.birdclef import BirdCLEFError

SR = 32000
SCAPE = "BC2026_Train_0001_S08_20240520_063000"


def tone(seconds: float) -> np.ndarray:
    return (0.1 * np.sin(2 * np.pi * 1000 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def make_folder(root: Path) -> Path:
    """A tiny real-looking competition folder: .ogg focal audio, as Kaggle ships it."""
    pd.DataFrame({"primary_label": ["aaa1", "bbb1", "47158son01"], "inat_taxon_id": [1, 2, 3],
                  "scientific_name": ["Genus alpha", "Genus beta", "Insecta sp"],
                  "common_name": ["A", "B", "C"], "class_name": ["Aves", "Aves", "Insecta"]}
                 ).to_csv(root / "taxonomy.csv", index=False)
    rows = []
    for i, (label, sec) in enumerate([("aaa1", "[]"), ("bbb1", "['aaa1']"), ("47158son01", "[]")]):
        (root / "train_audio" / label).mkdir(parents=True)
        sf.write(str(root / "train_audio" / label / f"XC{i}.ogg"), tone(2.0), SR, format="OGG")
        rows.append(dict(primary_label=label, secondary_labels=sec, type="['call']", filename=f"{label}/XC{i}.ogg",
                         collection="XC", rating=4.0, latitude=-17.0, longitude=-56.0,
                         scientific_name="x", common_name="y", author="z", license="cc", url="u"))
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    (root / "train_soundscapes").mkdir()
    sf.write(str(root / "train_soundscapes" / f"{SCAPE}.ogg"), tone(10.0), SR, format="OGG")
    sf.write(str(root / "train_soundscapes" / "BC2026_Train_0002_S01_20240521_221500.flac"), tone(10.0), SR)
    pd.DataFrame({"filename": [f"{SCAPE}.ogg"] * 3, "start": ["00:00:00", "00:00:05", "00:00:05"],
                  "end": ["00:00:05", "00:00:10", "00:00:10"], "primary_label": ["aaa1;bbb1", "", ""]}
                 ).to_csv(root / "train_soundscapes_labels.csv", index=False)
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)


def edit_csv(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df)
    df.to_csv(path, index=False)


def test_valid_folder_indexes_with_contract_columns(folder):
    comp = birdclef.read_competition(folder)
    tables = birdclef.index_tables(comp, None, lambda p: str(p))
    assert list(tables["species"].columns) == birdclef.SPECIES_COLUMNS
    assert list(tables["recordings"].columns) == birdclef.RECORDING_COLUMNS
    assert list(tables["soundscapes"].columns) == birdclef.SOUNDSCAPE_COLUMNS
    assert list(tables["chunks"].columns) == birdclef.CHUNK_COLUMNS
    assert tables["species"].genus.tolist() == ["Genus", "Genus", "Insecta"]
    rec = tables["recordings"].set_index("recording_id")
    assert rec.loc["bbb1/XC1", "secondary_labels"] == "aaa1"
    assert rec.loc["aaa1/XC0", "duration_s"] == pytest.approx(2.0)
    scapes = tables["soundscapes"].set_index("soundscape_id")
    assert scapes.loc[SCAPE, ["split", "site", "date", "hour"]].tolist() == ["labelled", "S08", "20240520", 6]
    assert scapes.loc["BC2026_Train_0002_S01_20240521_221500", "split"] == "unlabelled"
    chunks = tables["chunks"]
    assert len(chunks) == 4 and chunks.row_id.iloc[0] == f"{SCAPE}_5"
    first = chunks[chunks.soundscape_id == SCAPE].labels.tolist()
    assert first == ["aaa1;bbb1", ""]  # the duplicate row for 00:00:05 is dropped
    assert len(comp["chunk_labels"]) == 2


def test_species_order_follows_sample_submission(folder):
    pd.DataFrame(columns=["row_id", "bbb1", "47158son01", "aaa1"]).to_csv(folder / "sample_submission.csv", index=False)
    tables = birdclef.index_tables(birdclef.read_competition(folder), None, str)
    assert tables["species"].primary_label.tolist() == ["bbb1", "47158son01", "aaa1"]


def test_missing_column(folder):
    edit_csv(folder / "train.csv", lambda df: df.drop(columns=["rating"], inplace=True))
    with pytest.raises(BirdCLEFError, match=r"train\.csv, column 'rating': column missing"):
        birdclef.read_competition(folder)


def test_label_not_in_taxonomy(folder):
    edit_csv(folder / "train.csv", lambda df: df.loc.__setitem__((1, "primary_label"), "zzz9"))
    with pytest.raises(BirdCLEFError, match=r"train\.csv, row 2, column 'primary_label': label 'zzz9' is not in taxonomy"):
        birdclef.read_competition(folder)


def test_secondary_label_not_in_taxonomy(folder):
    edit_csv(folder / "train.csv", lambda df: df.loc.__setitem__((0, "secondary_labels"), "['nope1']"))
    with pytest.raises(BirdCLEFError, match=r"row 1, column 'secondary_labels': label 'nope1'"):
        birdclef.read_competition(folder)


def test_soundscape_label_not_in_taxonomy(folder):
    edit_csv(folder / "train_soundscapes_labels.csv", lambda df: df.loc.__setitem__((1, "primary_label"), "aaa1;qqq"))
    with pytest.raises(BirdCLEFError, match=r"labels\.csv, row 2, column 'primary_label': label 'qqq'"):
        birdclef.read_competition(folder)


def test_unreadable_audio(folder):
    (folder / "train_audio" / "bbb1" / "XC1.ogg").write_bytes(b"not audio at all" * 10)
    with pytest.raises(BirdCLEFError, match=r"train\.csv, row 2, column 'filename': .*XC1\.ogg: unreadable"):
        birdclef.read_competition(folder)


def test_missing_audio(folder):
    (folder / "train_audio" / "bbb1" / "XC1.ogg").unlink()
    with pytest.raises(BirdCLEFError, match=r"row 2, column 'filename'"):
        birdclef.read_competition(folder)


def test_empty_audio(folder):
    sf.write(str(folder / "train_audio" / "aaa1" / "XC0.ogg"), np.zeros(0, np.float32), SR, format="OGG")
    with pytest.raises(BirdCLEFError, match=r"row 1, column 'filename': .*(empty|unreadable)"):
        birdclef.read_competition(folder)


def test_soundscape_name_does_not_parse(folder):
    sf.write(str(folder / "train_soundscapes" / "recording_42.flac"), tone(1.0), SR)
    with pytest.raises(BirdCLEFError, match=r"recording_42\.flac: soundscape name 'recording_42' does not parse"):
        birdclef.read_competition(folder)


def test_soundscape_name_with_bad_hour(folder):
    sf.write(str(folder / "train_soundscapes" / "BC2026_Train_0003_S01_20240521_251500.flac"), tone(1.0), SR)
    with pytest.raises(BirdCLEFError, match=r"invalid date or time"):
        birdclef.read_competition(folder)


@pytest.mark.parametrize("column,value", [("start", "0:5"), ("end", "00:00:1x"), ("start", "00:61:00")])
def test_malformed_time(folder, column, value):
    edit_csv(folder / "train_soundscapes_labels.csv", lambda df: df.loc.__setitem__((2, column), value))
    with pytest.raises(BirdCLEFError, match=rf"labels\.csv, row 3, column '{column}': malformed time"):
        birdclef.read_competition(folder)


def test_labels_name_a_missing_soundscape(folder):
    edit_csv(folder / "train_soundscapes_labels.csv", lambda df: df.loc.__setitem__((0, "filename"), "nope.ogg"))
    with pytest.raises(BirdCLEFError, match=r"row 1, column 'filename': 'nope\.ogg' is not in train_soundscapes"):
        birdclef.read_competition(folder)


def test_write_index_round_trip(folder, tmp_path):
    tables = birdclef.index_tables(birdclef.read_competition(folder), None, str)
    birdclef.write_index(tmp_path / "index", tables)
    chunks = pd.read_csv(tmp_path / "index" / "chunks.csv", keep_default_na=False)
    assert list(chunks.columns) == birdclef.CHUNK_COLUMNS and len(chunks) == 4
