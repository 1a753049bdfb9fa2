"""Real-data mode's local hidden set: a seeded, file-grouped share of the labelled train soundscapes.

Outside Kaggle the competition's ``test_soundscapes/`` is empty, so the local board is made from the
labelled soundscapes instead: ``hold_out`` draws a share of them (grouped by file, or by site and
recording date so that recordings of one site on one day never sit on both sides), turns them into
test soundscapes (split ``test``: no labels reach the index, so every learner - head training,
pseudo-labelling, the priors, the probes - skips them by construction) and builds what the
synthetic set's hidden folder holds: a solution from their labels, public/private boards by file and
a sample submission. The leaderboard then scores real-data submissions exactly as synthetic ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.data.config import HOLDOUT_GROUPS as GROUPS
CHUNK_S = 5


class HoldoutError(ValueError):
    pass


@dataclass
class Holdout:
    """The local hidden set.

    scapes: the competition's soundscape table without the held-out files (as ``read_competition``).
    hidden: the held-out files, one row each, split ``test`` and their ``board`` (as ``read_hidden``).
    solution: [n_chunks, 1 + K] row_id + one 0/1 column per label (``order``); boards: filename,
    board; sample: row_id + one column per label (uniform probabilities).
    """
    scapes: pd.DataFrame
    hidden: pd.DataFrame
    solution: pd.DataFrame
    boards: pd.DataFrame
    sample: pd.DataFrame


def group_keys(scapes: pd.DataFrame, group: str) -> pd.Series:
    """The grouping key of each soundscape: its file stem, or ``<site>_<date>``."""
    if group == "file":
        return scapes["soundscape_id"].astype(str)
    if group == "site_date":
        return scapes["site"].astype(str) + "_" + scapes["date"].astype(str)
    raise HoldoutError(f"holdout group '{group}' is not one of {GROUPS}")


def deal_boards(stems: list[str], public_fraction: float, rng: np.random.Generator) -> list[str]:
    """'public' or 'private' per stem (by file, as Kaggle splits its test set); both boards get a
    file whenever there are two or more."""
    n_public = int(round(public_fraction * len(stems)))
    if len(stems) >= 2:
        n_public = min(max(n_public, 1), len(stems) - 1)
    public = set(rng.permutation(len(stems))[:n_public].tolist())
    return ["public" if i in public else "private" for i in range(len(stems))]


def chunk_rows(scape) -> list[tuple[str, int]]:
    """(row_id, chunk) of every 5-s chunk of a soundscape row (``soundscape_id``, ``duration_s``),
    numbered as the index's chunk table numbers them."""
    n = max(1, int(round(float(scape.duration_s) / CHUNK_S)))
    return [(f"{scape.soundscape_id}_{(c + 1) * CHUNK_S}", c) for c in range(n)]


def hold_out(scapes: pd.DataFrame, chunk_labels: pd.DataFrame, order: list[str], share: float, group: str,
             seed: int, public_fraction: float) -> Holdout | None:
    """Hold out ``share`` of the labelled soundscapes' groups (seeded; at least one group and at
    least one left to learn from). None when ``share`` is 0 (no local board: Kaggle's scores only).

    scapes: ``read_competition``'s soundscape table (soundscape_id, file, split, duration_s, site,
    date, ...); chunk_labels: soundscape_id, chunk, labels (``;``-joined).
    """
    if not 0 <= share < 1:
        raise HoldoutError(f"holdout share {share} is not in [0, 1)")
    if share == 0:
        return None
    labelled = scapes[scapes["split"] == "labelled"]
    keys = group_keys(labelled, group)
    groups = sorted(keys.unique())
    if len(groups) < 2:
        raise HoldoutError(f"{len(groups)} labelled soundscape group(s) by '{group}': a local board needs at "
                           f"least 2 (one held out, one to learn from); set dataset.holdout.share to 0")
    rng = np.random.default_rng(seed)
    n = min(max(int(round(share * len(groups))), 1), len(groups) - 1)
    picked = set(np.asarray(groups, dtype=object)[rng.permutation(len(groups))[:n]].tolist())
    held_ids = set(labelled.loc[keys.isin(picked), "soundscape_id"])
    held = scapes[scapes["soundscape_id"].isin(held_ids)].sort_values("soundscape_id").reset_index(drop=True)
    stems = held["soundscape_id"].astype(str).tolist()
    boards = pd.DataFrame({"filename": stems, "board": deal_boards(stems, public_fraction, rng)})
    hidden = held.assign(split="test", board=boards["board"].to_numpy())

    known = {(str(r.soundscape_id), int(r.chunk)): str(r.labels) for r in chunk_labels.itertuples()}
    column = {label: i for i, label in enumerate(order)}
    row_ids, truth = [], []
    for s in hidden.itertuples():
        for row_id, c in chunk_rows(s):
            y = np.zeros(len(order), dtype=np.int64)
            for label in filter(None, known.get((str(s.soundscape_id), c), "").split(";")):
                y[column[label]] = 1
            row_ids.append(row_id)
            truth.append(y)
    matrix = np.vstack(truth) if truth else np.zeros((0, len(order)), dtype=np.int64)
    solution = pd.concat([pd.DataFrame({"row_id": row_ids}), pd.DataFrame(matrix, columns=order)], axis=1)
    sample = solution[["row_id"]].copy()
    for label in order:
        sample[label] = round(1 / len(order), 6)
    rest = scapes[~scapes["soundscape_id"].isin(held_ids)].reset_index(drop=True)
    return Holdout(scapes=rest, hidden=hidden, solution=solution, boards=boards, sample=sample)


def write_hidden(folder, holdout: Holdout, note: str) -> None:
    """solution.csv, boards.csv, sample_submission.csv (the synthetic hidden folder's files) and a README."""
    holdout.solution.to_csv(folder / "solution.csv", index=False)
    holdout.boards.to_csv(folder / "boards.csv", index=False)
    holdout.sample.to_csv(folder / "sample_submission.csv", index=False)
    (folder / "README.md").write_text(note)
