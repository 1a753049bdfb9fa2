"""Real-data mode's local board: held-out labelled soundscapes reach no learner.

The competition folder is the synthetic set's competition half with an empty test_soundscapes/
(tests/fakes/competition.py); `dataset` indexes it in real-data mode with a held-out share.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.data import features
from birdclef_eos.data.folds import assign_folds
from birdclef_eos.data.plans import labelled_plan, read_index_table, window_plan
from birdclef_eos.heads.crossval import training_rows
from birdclef_eos.heads.inference import NoTestWindows, shift_rows
from birdclef_eos.scoring import boards
from birdclef_eos.scoring.postprocess import fit_prior
from stages import dataset
from stages.schema import load_params
from tests.fakes.competition import small_competition
from tests.fakes.repo_copy import REPO

SHIPPED = load_params(REPO / "params.yaml")


def real_params(share: float, group: str = "file") -> dict:
    return {"dataset": {**SHIPPED["dataset"], "source": "birdclef", "root": "comp", "public_fraction": 0.5,
                        "holdout": {"share": share, "group": group, "seed": 0}}}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The small folder indexed in real-data mode with a third of the labelled files held out."""
    root = tmp_path_factory.mktemp("real")
    small_competition(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        summary = dataset.run(real_params(0.34))
    return root, summary


def test_local_board_from_labelled_soundscapes(indexed):
    root, summary = indexed
    hidden = root / "data" / "hidden"
    solution = pd.read_csv(hidden / "solution.csv", dtype={"row_id": str})
    board = pd.read_csv(hidden / "boards.csv", dtype=str)
    sample = pd.read_csv(hidden / "sample_submission.csv", dtype={"row_id": str})
    scapes = read_index_table(root / "data" / "index", "soundscapes")
    test = scapes[scapes.split == "test"]
    assert summary.soundscapes_by_split == {"labelled": 4, "test": 2, "unlabelled": 2}
    assert sorted(board.filename) == sorted(test.soundscape_id) and set(board.board) == {"public", "private"}
    assert list(sample.row_id) == list(solution.row_id)
    assert set(boards.file_of(solution.row_id)) == set(test.soundscape_id)
    # the solution holds the labels the competition's labels file gives those chunks
    labels = pd.read_csv(root / "comp" / "train_soundscapes_labels.csv", keep_default_na=False)
    labels["row_id"] = labels.filename.str.replace(".flac", "", regex=False) + "_" + \
        labels.end.map(lambda t: str(int(t[-2:]) + 60 * int(t[-5:-3])))
    truth = solution.set_index("row_id")
    for row in labels[labels.row_id.isin(truth.index)].itertuples():
        on = {c for c in truth.columns if truth.loc[row.row_id, c] == 1}
        assert on == set(filter(None, row.primary_label.split(";")))
    assert all((root / p).is_file() for p in test.path)  # audio stays in the competition folder


def test_no_held_out_row_reaches_a_learner(indexed):
    """Every learner selects its rows by split (labelled / unlabelled at shift 0): head training and
    its folds, the students' pseudo pool, the pseudo-labelling teacher's rows, the priors, the
    soundscape probe, the baseline chain (ProtoSSM, SED, the spectrogram store's training windows).
    Held-out chunks are split `test` with no labels, so none of them selects one."""
    root, _ = indexed
    index = root / "data" / "index"
    chunks = read_index_table(index, "chunks")
    held = set(chunks.loc[chunks.split == "test", "row_id"])
    assert held and (chunks.loc[chunks.split == "test", "labels"] == "").all()
    plan = window_plan(index, 1, 0, [-1.0, 0.0, 1.0])
    windows = plan[features.WINDOW_COLUMNS].reset_index(drop=True)
    assert set(windows.loc[windows.row_id.isin(held), "source"]) == {"test"}
    assert (windows.loc[windows.row_id.isin(held), "labels"] == "").all()
    learned = {
        "train": training_rows(windows),
        "folds": windows[assign_folds(windows, 2, "salt") >= 0],
        "pseudo (teacher and student pool)": windows[(windows.source == "soundscape") & (windows.split == "unlabelled")],
        "ablation soundscape probe": windows[(windows.source == "soundscape") & (windows.split == "labelled")],
    }
    # the baseline chain: the spectrogram store's training windows, ProtoSSM's and the SED's rows
    from stages import protossm, spectrogram
    spec = spectrogram.select_windows(windows, [0.0])
    learned["chain spectrograms (training)"] = spec[spec.source != "test"]
    learned["chain ProtoSSM"] = protossm.chunk_rows(windows, "soundscape", "labelled", 0.0)
    learned["chain SED"] = spec[(spec.source == "focal") | ((spec.source == "soundscape") & (spec.split == "labelled"))]
    # the OOF's shifted windows (extract_labelled): scored, so no held-out file either
    learned["labelled chunks at other shifts"] = labelled_plan(index, [-1.0, 1.0])
    assert len(learned["labelled chunks at other shifts"]) == 2 * len(chunks[chunks.split == "labelled"])
    for name, rows in learned.items():
        assert not held & set(rows.row_id), name
    species = read_index_table(index, "species").sort_values("label_idx").primary_label.tolist()
    prior = fit_prior(chunks, species)
    everything = fit_prior(chunks.assign(split=chunks.split.replace("test", "labelled")), species)
    assert not np.allclose(prior["global"], everything["global"])  # the held-out labels are not in it
    labelled = chunks[chunks.split == "labelled"]
    assert prior["global"].sum() == pytest.approx(
        sum(len([x for x in v.split(";") if x]) for v in labelled.labels) / len(labelled))


def test_share_zero_has_no_test_windows_and_predict_says_so(tmp_path, monkeypatch):
    small_competition(tmp_path)
    monkeypatch.chdir(tmp_path)
    summary = dataset.run(real_params(0.0))
    assert "test" not in summary.soundscapes_by_split
    assert not (tmp_path / "data" / "hidden" / "solution.csv").exists()
    windows = window_plan(tmp_path / "data" / "index", 1, 0, [0.0])
    with pytest.raises(NoTestWindows, match="no test windows at all"):
        shift_rows(windows, 0.0)


def test_site_date_grouping(tmp_path, monkeypatch):
    small_competition(tmp_path)
    monkeypatch.chdir(tmp_path)
    dataset.run(real_params(0.5, "site_date"))
    scapes = read_index_table(tmp_path / "data" / "index", "soundscapes")
    key = scapes.site + "_" + scapes.date.astype(str)
    train_keys = set(key[scapes.split == "labelled"])
    assert train_keys.isdisjoint(key[scapes.split == "test"])


def test_predict_says_there_are_no_test_windows_not_add_the_shift(tmp_path, monkeypatch):
    """a mode with no test soundscapes at all gets told so, and how to get a board."""
    from stages import predict
    from tests.fakes.predict_fakes import make_tree, write_features
    from tests.stages.test_leaderboard import params

    make_tree(tmp_path)
    write_features(tmp_path, np.random.default_rng(1), shifts=[])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(predict.PredictError, match="no test windows at all") as err:
        predict.run(params(), "v6")
    assert "dataset.holdout.share" in str(err.value) and "add it to the extract" not in str(err.value)


@pytest.mark.parametrize("share", [0.0, 0.34])
def test_a_folder_without_labelled_soundscapes_is_refused_before_any_work(tmp_path, monkeypatch, share):
    small_competition(tmp_path)
    labels = tmp_path / "comp" / "train_soundscapes_labels.csv"
    pd.read_csv(labels).iloc[:0].to_csv(labels, index=False)  # the header only: no file is labelled
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dataset.DatasetStageError, match=r"comp/train_soundscapes_labels.csv lists none of the files"):
        dataset.run(real_params(share))
    assert not (tmp_path / "data").exists()  # nothing written
