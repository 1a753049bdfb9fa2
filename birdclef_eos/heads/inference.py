"""Test-time predictions of a trained head: one pass per TTA shift, aligned on the same rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.heads import models as heads


class InferenceError(ValueError):
    pass


class NoTestWindows(InferenceError):
    """The feature store holds no test window at any shift: the data set has no test soundscapes."""


def shift_rows(windows: pd.DataFrame, shift: float) -> np.ndarray:
    """Feature-row indices of the test chunks at one TTA shift, ordered by file then chunk."""
    test = windows[(windows["source"] == "test") & np.isclose(windows["shift_s"].astype(float), shift)]
    if test.empty and not (windows["source"] == "test").any():
        raise NoTestWindows("windows.csv: no test windows at all (the data set has no test soundscapes, "
                            "so there is nothing to predict)")
    if test.empty:
        shifts = sorted(windows.loc[windows["source"] == "test", "shift_s"].astype(float).unique())
        raise InferenceError(f"windows.csv: no test windows at shift {shift} s "
                             f"(extracted shifts: {shifts}); add it to the extract stage's shift set")
    return test.sort_values(["file_id", "chunk"]).index.to_numpy()


def predict_shifts(models, windows: pd.DataFrame, arrays: dict, names: list[str],
                   shifts: list[float], batch_size: int = 4096) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """(test rows at the first shift, one [n_rows, n_classes] probability array per shift),
    every shift aligned on the same row order."""
    reference, per_shift = None, []
    for shift in tqdm(shifts, desc="TTA shifts", leave=False):
        idx = shift_rows(windows, float(shift))
        rows = windows.loc[idx].reset_index(drop=True)
        if reference is None:
            reference = rows
        elif list(rows["row_id"]) != list(reference["row_id"]):
            raise InferenceError(f"windows.csv: test rows at shift {shift} s do not match "
                                 f"those at shift {shifts[0]} s")
        per_shift.append(heads.predict_proba(models, [np.asarray(arrays[n])[idx] for n in names],
                                            batch_size=batch_size))
    return reference, per_shift
