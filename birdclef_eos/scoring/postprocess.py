"""Post-processing of chunk probabilities: priors, smoothing, TTA, taxonomy (facts.md section 4).

Every function is pure: arrays in, new arrays out. ``P`` is ``[N, K]`` (rows = 5-s chunks,
columns = labels in sample_submission order); ``files`` is the soundscape of each row and
``chunks`` its chunk index, so that per-file operations know which rows form a time series.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

EPS = 1e-6  # clip before a logit so that 0 and 1 stay finite


class PostprocessError(ValueError):
    pass


def logit(p: np.ndarray, eps: float = EPS) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


# ---------------------------------------------------------------- test-time augmentation

def average_shifts(per_shift: list[np.ndarray], space: str) -> np.ndarray:
    """Mean of the predictions for each TTA shift, in probability or logit space."""
    if not per_shift:
        raise PostprocessError("average_shifts: no shifted predictions given")
    shapes = {p.shape for p in per_shift}
    if len(shapes) != 1:
        raise PostprocessError(f"average_shifts: shifted predictions differ in shape {sorted(shapes)}")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in per_shift])
    if space == "prob":
        return stack.mean(axis=0)
    if space == "logit":
        return sigmoid(logit(stack).mean(axis=0))
    raise PostprocessError(f"average_shifts: space must be 'prob' or 'logit', not {space!r}")


# ---------------------------------------------------------------- site/hour prior

def multi_hot(labels: pd.Series, classes: list[str]) -> np.ndarray:
    """``;``-joined label strings -> [N, K] 0/1 matrix; unknown labels are an error."""
    col = {c: i for i, c in enumerate(classes)}
    Y = np.zeros((len(labels), len(classes)), dtype=np.float64)
    for r, cell in enumerate(labels.fillna("").astype(str)):
        for lab in filter(None, cell.split(";")):
            if lab not in col:
                raise PostprocessError(f"label {lab!r} in row {r} is not a known class")
            Y[r, col[lab]] = 1.0
    return Y


def key_of(value) -> str:
    """A site or hour as a dictionary key: 6, "6" and 6.0 are the same hour; missing is ""."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    try:
        number = float(text)
        return str(int(number)) if number.is_integer() else text
    except ValueError:
        return text


def fit_prior(chunks: pd.DataFrame, classes: list[str]) -> dict:
    """Label frequencies of the labelled soundscape chunks: global, per hour, per site, per site x hour.

    Only rows with ``split == "labelled"`` count, so hidden-test labels can never leak in.
    Returns {"classes", "global": (K,), "hour"/"site"/"site_hour": {key: (n, (K,) freq)}}.
    """
    need = {"split", "site", "hour", "labels"} - set(chunks.columns)
    if need:
        raise PostprocessError(f"fit_prior: chunk table lacks columns {sorted(need)}")
    rows = chunks[chunks["split"] == "labelled"]
    if rows.empty:
        raise PostprocessError("fit_prior: no labelled soundscape chunks to build the prior from")
    Y = multi_hot(rows["labels"], classes)
    site = np.array([key_of(v) for v in rows["site"]], dtype=str)
    hour = np.array([key_of(v) for v in rows["hour"]], dtype=str)

    def by(keys: np.ndarray) -> dict:
        return {k: (int((keys == k).sum()), Y[keys == k].mean(axis=0)) for k in sorted(set(keys))}

    return {"classes": list(classes), "global": Y.mean(axis=0), "hour": by(hour), "site": by(site),
            "site_hour": by(np.char.add(np.char.add(site, "|"), hour))}


def prior_probability(prior: dict, site: str, hour, k_hour: float, k_site: float,
                      k_site_hour: float) -> np.ndarray:
    """Hierarchically shrunk P(class | site, hour): global -> hour -> site -> site x hour.

    Each level pulls towards its own frequency with weight n / (n + k); an unseen key (or k = 0
    for site x hour) leaves the estimate as it is.
    """
    p = prior["global"].copy()
    site, hour = key_of(site), key_of(hour)
    levels = [("hour", hour, k_hour), ("site", site, k_site),
              ("site_hour", f"{site}|{hour}", k_site_hour)]
    for level, key, k in levels:
        if k <= 0 or "" in key.split("|") or key not in prior[level]:
            continue
        n, freq = prior[level][key]
        w = n / (n + k)
        p = w * freq + (1.0 - w) * p
    return p


def apply_prior(Z: np.ndarray, sites, hours, prior: dict, alpha: float, clip: float,
                relative: bool, **shrink) -> np.ndarray:
    """logit += alpha * logit(p_prior(site, hour)); ``relative`` subtracts the global log-odds
    (the paper's log P(s|site,hr) / P(s) form)."""
    Z = np.asarray(Z, dtype=np.float64)
    if alpha == 0:
        return Z.copy()
    out = Z.copy()
    base = logit(np.clip(prior["global"], clip, 1 - clip), eps=0.0)
    cache: dict = {}
    for r, key in enumerate(zip(map(key_of, sites), map(key_of, hours))):
        if key not in cache:
            p = np.clip(prior_probability(prior, *key, **shrink), clip, 1 - clip)
            cache[key] = logit(p, eps=0.0) - (base if relative else 0.0)
        out[r] += alpha * cache[key]
    return out


# ---------------------------------------------------------------- per-file operations

def file_groups(files, chunks) -> list[np.ndarray]:
    """Row indices of each file, ordered by chunk (files in order of first appearance)."""
    codes, _ = pd.factorize(np.asarray(files))              # file index in order of first appearance
    order = np.lexsort((np.asarray(chunks), codes))          # by file, then chunk (one sort, not one per file)
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if len(order) else []


def gaussian_smooth(P: np.ndarray, files, chunks, sigma: float, mode: str,
                    space: str, truncate: float) -> np.ndarray:
    """Gaussian filter along each file's chunks (``scipy.ndimage.gaussian_filter1d``)."""
    P = np.asarray(P, dtype=np.float64)
    if sigma <= 0:
        return P.copy()
    if space not in ("logit", "prob"):
        raise PostprocessError(f"gaussian_smooth: space must be 'logit' or 'prob', not {space!r}")
    X = logit(P) if space == "logit" else P
    out = X.copy()
    for rows in file_groups(files, chunks):
        out[rows] = gaussian_filter1d(X[rows], sigma, axis=0, mode=mode, truncate=truncate)
    return sigmoid(out) if space == "logit" else out


def rank_power_scale(P: np.ndarray, files, chunks, power: float) -> np.ndarray:
    """p * (max of that class over the file's chunks) ** power: damp classes never strong in a file."""
    P = np.asarray(P, dtype=np.float64)
    if power == 0:
        return P.copy()
    out = P.copy()
    for rows in file_groups(files, chunks):
        out[rows] = P[rows] * P[rows].max(axis=0, keepdims=True) ** power
    return out


def adaptive_neighbour_smooth(P: np.ndarray, files, chunks, base: float) -> np.ndarray:
    """Pull each chunk towards the mean of its neighbours by a = base * (1 - max class confidence):
    confident chunks stay, uncertain ones borrow from their neighbours. File edges use one neighbour."""
    P = np.asarray(P, dtype=np.float64)
    if base == 0:
        return P.copy()
    out = P.copy()
    for rows in file_groups(files, chunks):
        X = P[rows]
        if len(X) < 2:
            continue
        left = np.vstack([X[1:2], X[:-1]])   # chunk 0 has only a right neighbour
        right = np.vstack([X[1:], X[-2:-1]])
        a = base * (1.0 - X.max(axis=1, keepdims=True))
        out[rows] = (1 - a) * X + a * 0.5 * (left + right)
    return out


# ---------------------------------------------------------------- taxonomy

def group_smooth(P: np.ndarray, groups, alpha: float) -> np.ndarray:
    """p[:, g] <- (1 - alpha) p[:, g] + alpha mean_{j in g} p[:, j] for every group with >1 member."""
    P = np.asarray(P, dtype=np.float64)
    out = P.copy()
    if alpha == 0:
        return out
    groups = np.asarray(groups).astype(str)
    for g in np.unique(groups):
        cols = np.flatnonzero(groups == g)
        if len(cols) > 1:
            out[:, cols] = (1 - alpha) * P[:, cols] + alpha * P[:, cols].mean(axis=1, keepdims=True)
    return out


def taxonomy_smooth(P: np.ndarray, genus, class_name, genus_alpha: float,
                    class_alpha: float) -> np.ndarray:
    """TAX_SMOOTHING: genus pull, then class pull, then clip to [0, 1]."""
    out = group_smooth(P, genus, genus_alpha)
    out = group_smooth(out, class_name, class_alpha)
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------- the whole chain

STEP_KNOBS = ("prior_alpha", "sigma", "rank_power", "neighbour_base", "tax_genus_alpha", "tax_class_alpha")


@dataclass(frozen=True)
class Knobs:
    """Every post-processing knob (params.yaml `postprocess`, where each default lives and is
    explained). A step knob at 0 switches that step off."""
    prior_alpha: float
    prior_k_hour: float
    prior_k_site: float
    prior_k_site_hour: float
    prior_clip: float
    prior_relative: bool
    sigma: float
    smooth_mode: str
    smooth_space: str
    smooth_truncate: float
    tta_space: str
    rank_power: float
    neighbour_base: float
    tax_genus_alpha: float
    tax_class_alpha: float


def resolve_knobs(defaults: dict, post, name: str) -> Knobs:
    """The knobs of one submission from the shared ``defaults``: ``post`` false (or None)
    switches every step off, true takes the defaults, a mapping overrides some of them."""
    knobs = dict(defaults)
    if post is False or post is None:
        knobs.update({k: 0.0 for k in STEP_KNOBS})
    elif isinstance(post, dict):
        unknown = sorted(set(post) - set(defaults))
        if unknown:
            raise PostprocessError(f"submissions.{name}.postprocess: unknown knob(s) {unknown}; "
                                   f"known: {sorted(defaults)}")
        knobs.update(post)
    elif post is not True:
        raise PostprocessError(f"submissions.{name}.postprocess must be true, false or a mapping, not {post!r}")
    return Knobs(**knobs)


def postprocess(P: np.ndarray, rows: pd.DataFrame, knobs: Knobs, prior: dict | None = None,
                species: pd.DataFrame | None = None) -> np.ndarray:
    """Apply the chain in a fixed order: prior (logits), Gaussian smoothing, rank-aware power,
    adaptive neighbour smoothing, taxonomy smoothing. ``rows`` has file_id, chunk, site, hour."""
    files, chunks = rows["file_id"].to_numpy(), rows["chunk"].to_numpy()
    P = np.asarray(P, dtype=np.float64)
    if knobs.prior_alpha:
        if prior is None:
            raise PostprocessError("postprocess: prior_alpha > 0 but no prior was fitted")
        Z = apply_prior(logit(P), rows["site"], rows["hour"], prior, knobs.prior_alpha,
                        clip=knobs.prior_clip, relative=knobs.prior_relative,
                        k_hour=knobs.prior_k_hour, k_site=knobs.prior_k_site,
                        k_site_hour=knobs.prior_k_site_hour)
        P = sigmoid(Z)
    P = gaussian_smooth(P, files, chunks, knobs.sigma, mode=knobs.smooth_mode,
                        space=knobs.smooth_space, truncate=knobs.smooth_truncate)
    P = rank_power_scale(P, files, chunks, knobs.rank_power)
    P = adaptive_neighbour_smooth(P, files, chunks, knobs.neighbour_base)
    if knobs.tax_genus_alpha or knobs.tax_class_alpha:
        if species is None:
            raise PostprocessError("postprocess: taxonomy smoothing needs the species table")
        P = taxonomy_smooth(P, species["genus"], species["class_name"],
                            knobs.tax_genus_alpha, knobs.tax_class_alpha)
    return P
