import numpy as np
import pytest

from birdclef_eos.data import folds
from tests.fakes import toy_features


@pytest.fixture
def windows():
    return toy_features.toy_store(n_species=5, n_recordings=40, n_soundscapes=16)[0]


def test_no_file_in_two_folds(windows):
    fold = folds.assign_folds(windows, 5, "salt")
    used = windows.assign(fold=fold)[fold >= 0]
    assert (used.groupby(["source", "file_id"])["fold"].nunique() == 1).all()
    assert set(used["fold"]) == set(range(5))


def test_every_labelled_chunk_out_of_fold_once(windows):
    fold = folds.assign_folds(windows, 5, "salt")
    labelled = ((windows["source"] == "soundscape") & (windows["split"] == "labelled")).to_numpy()
    chunks = windows.loc[labelled & (windows["shift_s"] == 0), "row_id"]
    held_out = [set(windows.loc[labelled & (windows["shift_s"] == 0) & (fold == k), "row_id"]) for k in range(5)]
    counts = {r: sum(r in h for h in held_out) for r in chunks}
    assert counts and all(c == 1 for c in counts.values())


def test_unlabelled_and_test_rows_are_never_used(windows):
    fold = folds.assign_folds(windows, 5, "salt")
    assert (fold[(windows["split"] == "unlabelled").to_numpy()] == -1).all()


def test_split_is_stable_and_depends_on_salt(windows):
    a = folds.assign_folds(windows, 5, "salt")
    shuffled = windows.sample(frac=1.0, random_state=1)
    b = folds.assign_folds(shuffled, 5, "salt")
    assert np.array_equal(a[shuffled.index.to_numpy()], b)
    assert not np.array_equal(a, folds.assign_folds(windows, 5, "other"))


def test_too_few_folds_is_an_error(windows):
    with pytest.raises(folds.FoldError):
        folds.assign_folds(windows, 1, "salt")
