"""Blends of submissions: weights resolved by name, parts aligned on rows and columns, mixed in
probability or rank space, then optionally taxonomy-smoothed (facts.md section 4).

A part is a submission frame (row_id then one probability column per label). Weights are numbers,
the shared weight's name (resolved from a mapping of shared weights) or ``rest`` (one minus the
others, at most one part per blend). Ranks are taken per class over ALL rows of the part, before
any split into boards (the public chain ranks over every test row too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from birdclef_eos.scoring.metric import average_ranks

from birdclef_eos.scoring.postprocess import taxonomy_smooth

REST = "rest"
SPACES = ("prob", "rank")
TOLERANCE = 1e-9


class BlendError(ValueError):
    pass


@dataclass
class Blend:
    """One blend, resolved. weights: part name -> weight (sum 1); space: prob | rank;
    taxonomy: (genus alpha, class alpha) applied after mixing, or None."""
    name: str
    weights: dict[str, float]
    space: str
    taxonomy: tuple[float, float] | None


def resolve_weights(name: str, parts: dict, shared: dict[str, float], normalise: bool = False) -> dict[str, float]:
    """Part -> weight. A value is a number, a key of ``shared`` (e.g. ``weight`` -> blend.weight)
    or ``rest``; the weights must sum to 1 unless ``normalise`` (then they are scaled to 1)."""
    if not parts:
        raise BlendError(f"blends.{name}.parts: empty")
    out, rest = {}, [p for p, w in parts.items() if w == REST]
    if len(rest) > 1:
        raise BlendError(f"blends.{name}.parts: more than one part is `rest` ({rest})")
    for part, w in parts.items():
        if w == REST:
            continue
        if isinstance(w, str):
            if w not in shared:
                raise BlendError(f"blends.{name}.parts.{part}: '{w}' is neither a number, `rest` nor a shared "
                                 f"weight ({sorted(shared)})")
            w = shared[w]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise BlendError(f"blends.{name}.parts.{part}: weight {w!r} is not a number >= 0")
        out[part] = float(w)
    total = sum(out.values())
    if rest:
        if normalise:
            raise BlendError(f"blends.{name}: `rest` and normalise: true together leave the weights undefined")
        if total > 1 + TOLERANCE:
            raise BlendError(f"blends.{name}.parts: the fixed weights sum to {total:g} > 1, nothing left for "
                             f"`rest` ({rest[0]})")
        out[rest[0]] = 1.0 - total
        return {p: out[p] for p in parts}
    if normalise:
        if total <= 0:
            raise BlendError(f"blends.{name}.parts: weights sum to 0; nothing to normalise")
        return {p: out[p] / total for p in parts}
    if abs(total - 1.0) > 1e-6:
        raise BlendError(f"blends.{name}.parts: weights sum to {total:g}, not 1 (give one part `rest`, "
                         f"or set normalise: true)")
    return out


def resolve_blend(name: str, entry: dict, shared: dict) -> Blend:
    """A `blends:` entry resolved against the shared `blend:` section (weight, space, taxonomy):
    the blend stage's and a Kaggle kernel's (bundle/infer.py) one reading of an entry."""
    weights = resolve_weights(name, entry["parts"], {"weight": shared["weight"]}, entry.get("normalise", False))
    tax = shared["taxonomy"]
    return Blend(name=name, weights=weights, space=entry.get("space", shared["space"]),
                 taxonomy=(tax["genus"], tax["class"]) if entry.get("taxonomy", False) else None)


def positive_weights(weights: dict[str, float]) -> dict[str, float]:
    """The parts with a weight > 0, scaled to sum 1 (the base chain's model blend)."""
    used = {n: float(w) for n, w in weights.items() if w > 0}
    total = sum(used.values())
    if total <= 0:
        raise BlendError(f"blend weights {weights}: none is > 0")
    return {n: w / total for n, w in used.items()}


def align(frames: dict[str, pd.DataFrame]) -> tuple[pd.Series, list[str], dict[str, np.ndarray]]:
    """(row ids, label columns, part -> float64 [rows, labels]) of parts that must agree exactly on
    the set of rows and the label columns; rows are taken in the first part's order."""
    names = list(frames)
    first = names[0]
    ref = frames[first]
    ref_ids, ref_cols = ref["row_id"].astype(str), [c for c in ref.columns if c != "row_id"]
    if ref_ids.duplicated().any():
        raise BlendError(f"part '{first}': duplicate row_id {ref_ids[ref_ids.duplicated()].iloc[0]!r}")
    out = {}
    for name in names:
        f = frames[name]
        ids, cols = f["row_id"].astype(str), [c for c in f.columns if c != "row_id"]
        if cols != ref_cols:
            missing, extra = sorted(set(ref_cols) - set(cols)), sorted(set(cols) - set(ref_cols))
            what = f"missing {missing[:3]}, extra {extra[:3]}" if (missing or extra) else "the same labels in another order"
            raise BlendError(f"parts '{first}' and '{name}' disagree on label columns: '{name}' has {what}")
        if set(ids) != set(ref_ids) or len(ids) != len(ref_ids):
            missing, extra = sorted(set(ref_ids) - set(ids)), sorted(set(ids) - set(ref_ids))
            raise BlendError(f"parts '{first}' and '{name}' disagree on rows: '{name}' lacks {len(missing)} "
                             f"(e.g. {missing[:2]}) and has {len(extra)} others (e.g. {extra[:2]})")
        out[name] = f.set_index(ids)[cols].reindex(ref_ids).to_numpy(dtype=np.float64)
    return ref_ids.reset_index(drop=True), ref_cols, out


def rank_columns(P: np.ndarray) -> np.ndarray:
    """Per class, the rank of each row among ALL rows scaled to [0, 1] (ties share their mean
    rank; a constant column becomes 0.5)."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2:
        raise BlendError(f"expected a [rows, classes] array, got shape {P.shape}")
    n = len(P)
    if n < 2:
        return np.full_like(P, 0.5)
    return (average_ranks(P) - 1.0) / (n - 1.0)


def mix(arrays: dict[str, np.ndarray], weights: dict[str, float], space: str) -> np.ndarray:
    """Sum of weight x part, in probability space or over per-class ranks (``rank_columns``)."""
    if space not in SPACES:
        raise BlendError(f"blend space must be one of {SPACES}, not {space!r}")
    out = None
    for name, w in weights.items():
        X = arrays[name] if space == "prob" else rank_columns(arrays[name])
        out = w * X if out is None else out + w * X
    return out


def blend(frames: dict[str, pd.DataFrame], spec: Blend, species: pd.DataFrame | None = None) -> pd.DataFrame:
    """The blended submission frame (rows in the first part's order). ``species`` (primary_label,
    genus, class_name) is needed when ``spec.taxonomy`` is set."""
    missing = [p for p in spec.weights if p not in frames]
    if missing:
        raise BlendError(f"blend '{spec.name}': no part(s) {missing}")
    ids, cols, arrays = align({p: frames[p] for p in spec.weights})
    P = mix(arrays, spec.weights, spec.space)
    if spec.taxonomy is not None:
        if species is None:
            raise BlendError(f"blend '{spec.name}': taxonomy smoothing needs the species table")
        table = species.set_index(species["primary_label"].astype(str))
        absent = [c for c in cols if c not in table.index]
        if absent:
            raise BlendError(f"blend '{spec.name}': label(s) {absent[:3]} are not in the species table")
        table = table.loc[cols]
        P = taxonomy_smooth(P, table["genus"].to_numpy(), table["class_name"].to_numpy(), *spec.taxonomy)
    out = pd.DataFrame(P, columns=cols)
    out.insert(0, "row_id", ids.to_numpy())
    return out


def order_blends(entries: dict[str, dict], available: set[str]) -> list[str]:
    """Blend names in an order where every part is available (a submission on disk, or a blend
    computed earlier); a cycle or a missing part is an error naming it."""
    done, order = set(available), []
    pending = dict(entries)
    while pending:
        ready = [n for n, e in pending.items() if all(p in done for p in e["parts"])]
        if not ready:
            name, entry = next(iter(pending.items()))
            missing = [p for p in entry["parts"] if p not in done and p not in pending]
            if missing:
                raise BlendError(f"blends.{name}: part(s) {missing} are neither a submission of this run nor a blend")
            raise BlendError(f"blends {sorted(pending)}: their parts refer to each other in a cycle")
        for n in ready:
            order.append(n)
            done.add(n)
            del pending[n]
    return order
