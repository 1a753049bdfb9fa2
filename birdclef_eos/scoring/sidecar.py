"""The sidecar's masked rank correction (Table 4's eos10, "BirdNET sidecar"; inferred from a public
write-up, so every knob is a parameter).

    B = A + W * M * (S - A)

A and S are the anchor's and the sidecar's ranks: per class, over every row given (all test
chunks), scaled to [0, 1] (ties share their mean rank). M is 1 where the class is among the
sidecar's ``top_k`` classes of that chunk (by the sidecar's own scores) and the anchor is below
``threshold`` (on the anchor's rank, or on its score with ``threshold_space="score"``), else 0.
W is the weight. The movement of one chunk, sum over classes of |B - A|, is capped at ``budget``:
a chunk that would move more has its whole correction scaled down to the budget. Classes outside
the mask never move. B stays in [0, 1] (each value lies between A and S when 0 <= W <= 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.scoring.blend import align, rank_columns


class SidecarError(ValueError):
    pass


@dataclass
class Correction:
    """blended: B [N, K] (rank space, in [0, 1]); mask: M [N, K] bool; movement: [N] sum of |B - A|
    per chunk after the budget; capped: [N] bool, the chunks whose correction the budget scaled down."""
    blended: np.ndarray
    mask: np.ndarray
    movement: np.ndarray
    capped: np.ndarray


def top_k_mask(S: np.ndarray, k: int) -> np.ndarray:
    """True at each row's ``k`` highest values (ties broken by the lower class index)."""
    n, K = S.shape
    k = min(int(k), K)
    mask = np.zeros((n, K), dtype=bool)
    if k <= 0:
        return mask
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def correct(anchor: np.ndarray, sidecar: np.ndarray, *, weight: float, top_k: int, threshold: float,
            budget: float | None, threshold_space: str = "rank") -> Correction:
    """The masked rank correction of ``anchor`` [N, K] by ``sidecar`` [N, K] (same rows, same
    classes; raw scores or probabilities: only their orders matter, except for ``threshold``
    with ``threshold_space="score"``). ``budget``: the most one chunk may move (sum over classes
    of |B - A|); None = no cap."""
    anchor, sidecar = np.asarray(anchor, dtype=np.float64), np.asarray(sidecar, dtype=np.float64)
    if anchor.shape != sidecar.shape or anchor.ndim != 2:
        raise SidecarError(f"anchor {anchor.shape} and sidecar {sidecar.shape} must be the same [rows, classes] shape")
    for name, a in (("anchor", anchor), ("sidecar", sidecar)):
        if not np.all(np.isfinite(a)):
            row = int(np.argwhere(~np.isfinite(a))[0][0])
            raise SidecarError(f"{name} has a NaN or infinite value (row {row})")
    if not 0.0 <= weight <= 1.0:
        raise SidecarError(f"weight must be in [0, 1], got {weight}")
    if top_k < 0:
        raise SidecarError(f"top_k must be >= 0, got {top_k}")
    if budget is not None and budget < 0:
        raise SidecarError(f"budget must be >= 0 or None, got {budget}")
    if threshold_space not in ("rank", "score"):
        raise SidecarError(f"threshold_space must be rank | score, got {threshold_space!r}")
    A, S = rank_columns(anchor), rank_columns(sidecar)
    low = (A if threshold_space == "rank" else anchor) < threshold
    mask = top_k_mask(sidecar, top_k) & low
    delta = weight * mask * (S - A)
    movement = np.abs(delta).sum(axis=1)
    capped = np.zeros(len(A), dtype=bool)
    if budget is not None:
        capped = movement > budget
        scale = np.ones(len(A))
        scale[capped] = budget / movement[capped]
        delta = delta * scale[:, None]
        movement = np.abs(delta).sum(axis=1)
    return Correction(blended=A + delta, mask=mask, movement=movement, capped=capped)


def apply(sub: pd.DataFrame, sidecar: pd.DataFrame, knobs: dict) -> pd.DataFrame:
    """The masked rank correction of a blend's submission ``sub`` by the sidecar's submission (Table 4's
    eos10), with a `blends:` entry's ``sidecar:`` knobs (submission, weight, top_k, threshold, budget,
    threshold_space). One place for the blend stage and a Kaggle bundle's blend kind."""
    _, cols, arrays = align({"blend": sub, knobs["submission"]: sidecar})
    fixed = correct(arrays["blend"], arrays[knobs["submission"]], weight=knobs["weight"], top_k=knobs["top_k"],
                    threshold=knobs["threshold"], budget=knobs["budget"], threshold_space=knobs["threshold_space"])
    out = pd.DataFrame(fixed.blended, columns=cols)
    out.insert(0, "row_id", sub["row_id"].to_numpy())
    return out
