"""The competition's classes in label order, as every stage that trains, predicts or scores reads them.

``species_table`` is data/index/species.csv sorted by `label_idx` (text columns as text, an empty
cell as "", as birdclef_eos/data/plans.py `read_index_table` reads every index table; this module
needs only pandas, so a head's stage does not depend on the window planner); ``species_labels`` is its
`primary_label` column, the column order of every OOF, prediction and submission file.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# genus and class_name are the taxonomy smoothing's groups: read as text, a numeric-looking name keeps its
# spelling (group_smooth compares them as text)
TEXT = {"primary_label": str, "scientific_name": str, "common_name": str, "genus": str, "class_name": str}


class SpeciesError(ValueError):
    pass


def species_table(index: str | Path) -> pd.DataFrame:
    """data/index/species.csv (``index``: the data/index folder) in `label_idx` order."""
    path = Path(index) / "species.csv"
    if not path.exists():
        raise SpeciesError(f"{path}: not found; run the dataset stage first")
    table = pd.read_csv(path, keep_default_na=False, dtype=TEXT)
    missing = [c for c in ("label_idx", "primary_label") if c not in table.columns]
    if missing:
        raise SpeciesError(f"{path}: no column(s) {missing}; re-run the dataset stage")
    return table.sort_values("label_idx")


def species_labels(index: str | Path) -> list[str]:
    """The `primary_label` of every class, in `label_idx` order."""
    return species_table(index)["primary_label"].astype(str).tolist()
