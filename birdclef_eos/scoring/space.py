"""Which space a blend mixes in, decided on the out-of-fold predictions.

A blend's parts need not share a scale: the base chain's submission is rank-valued (every column
reaches 1.0), a head's a probability (columns of a few hundredths). Mixed as probabilities, a head
at 7 % moves the blend by a fraction of a percent; mixed as per-class ranks, it carries its weight.
The paper does not say which it did, so the choice is made on data the hidden boards never see: the
base's and the head's OOF on the labelled soundscapes, each post-processed as its submission is
(fold-wise, the site/hour prior of each fold fitted without that fold's files), blended at the
head's weight in each space, then smoothed by taxonomy as the blend is. The space with the higher
macro-AUC, at the 6 decimals the metrics keep, is chosen; a tie goes to `prob`, the mix that keeps
each part's own scale. The difference is written with a paired bootstrap over files, so a reader
sees whether the choice matters or is a coin toss.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.io.files import read_json
from birdclef_eos.scoring.blend import SPACES, mix
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from birdclef_eos.scoring.shares import effective_shares

DIGITS = 6  # the resolution every metric is written at; a tie at it goes to TIE
TIE = "prob"


def chosen_space(scores: dict[str, float], digits: int = DIGITS) -> str:
    """The space with the higher score at ``digits`` decimals; a tie (or a NaN) goes to ``TIE``."""
    rank, prob = (round(float(scores[s]), digits) for s in ("rank", "prob"))
    return "rank" if np.isfinite(rank) and (not np.isfinite(prob) or rank > prob) else TIE


def compare_spaces(y: np.ndarray, base: np.ndarray, head: np.ndarray, groups: np.ndarray, weight: float,
                   smooth: Callable[[np.ndarray], np.ndarray], draws: int, seed: int, confidence: float) -> dict:
    """`rank` against `prob` on the OOF: y [N, K] truth; base, head [N, K] the two parts' OOF as they
    are submitted; groups [N] the file of each row (the bootstrap's unit); ``weight`` the head's share;
    ``smooth`` what the blend applies after mixing (taxonomy smoothing, or the identity). Returns each
    part's macro-AUC, per space the blend's macro-AUC and each part's effective share, rank minus prob
    with its paired interval, and ``chosen`` (``chosen_space``)."""
    y = np.asarray(y) > 0.5
    weights = {"base": 1.0 - weight, "head": weight}
    parts = {"base": base, "head": head}
    blended = {sp: smooth(mix(parts, weights, sp)) for sp in SPACES}
    keep = y.any(axis=0) & (~y).any(axis=0)  # classes the metric can score
    ci = paired_bootstraps(y[:, keep], blended["rank"][:, keep], {"prob": blended["prob"][:, keep]},
                           np.asarray(groups), draws, seed, confidence)["prob"]
    out = {"weight": weight, "rows": int(len(y)), "base": round(float(macro_auc(y, base)), DIGITS),
           "head": round(float(macro_auc(y, head)), DIGITS),
           **{sp: {"macro_auc": round(float(macro_auc(y, blended[sp])), DIGITS),
                   "effective_share": effective_shares(parts, weights, sp)} for sp in SPACES},
           "rank_minus_prob": ci.as_dict()}
    out["chosen"] = chosen_space({sp: out[sp]["macro_auc"] for sp in SPACES})
    return out


class SpaceError(ValueError):
    pass


def read_parts(folder: str | Path, chunks: pd.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """(y [N, K] truth, base [N, K], head [N, K], groups [N] file ids, parts.json) from the base stage's
    ``folder`` (base.csv, reference.csv, parts.json) and the chunk index ``chunks`` (row_id, labels,
    soundscape_id), in ``labels`` order; a folder without an OOF is an error naming it."""
    folder = Path(folder)
    parts = read_json(folder / "parts.json", "run the base stage")
    if parts.get("oof") is None:
        raise SpaceError(f"{folder}/parts.json: no OOF ({parts.get('why', 'the base stage wrote none')}); a blend "
                         f"space cannot be chosen on it: set blend.space to prob or rank")
    base_frame = pd.read_csv(folder / parts["oof"]["base"], dtype={"row_id": str})
    row_ids = base_frame["row_id"].tolist()
    rows = chunks.set_index(chunks["row_id"].astype(str)).reindex(row_ids)
    if rows["labels"].isna().any():
        raise SpaceError(f"{folder}/{parts['oof']['base']}: rows not in the chunk index (re-run the base stage)")
    y = truth_matrix(rows["labels"], labels)
    base = read_oof(folder / parts["oof"]["base"], labels, row_ids, made_by="the base stage")
    head = read_oof(folder / parts["oof"]["reference"], labels, row_ids, made_by="the base stage")
    return y, base, head, rows["soundscape_id"].astype(str).to_numpy(), parts


def compare_spaces_on_oof(folder: str | Path, chunks_csv: str | Path, labels: list[str], weight: float,
                          smooth: Callable[[np.ndarray], np.ndarray], draws: int, seed: int, confidence: float,
                          required: bool = True) -> tuple[dict, str] | None:
    """``compare_spaces`` on the base stage's OOF: reads the chunk index (``chunks_csv``) and the base's
    OOF ``folder`` (``read_parts``, in ``labels`` order) and compares the spaces at ``weight``. Returns
    (the comparison, the name of the reference head whose OOF is the head part). The blend stage needs
    the comparison to choose its space, so a folder without an OOF is an error there (``required``); the
    ceiling stage only reports it, so with ``required=False`` such a folder gives None."""
    if not required and read_json(Path(folder) / "parts.json", "run the base stage").get("oof") is None:
        return None
    chunks = pd.read_csv(chunks_csv, keep_default_na=False, dtype={"labels": str, "row_id": str})
    y, base, head, groups, parts = read_parts(folder, chunks, labels)
    return compare_spaces(y, base, head, groups, weight, smooth, draws, seed, confidence), parts["reference"]
