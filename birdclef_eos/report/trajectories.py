"""Figure 2: each species' centroid traced through the backbone's last blocks in one 2-D space.

The paper draws per-species centroids through MBConv blocks 21 -> 25 "in joint UMAP space" and
does not say how blocks of different widths share one space. Here (every choice a parameter):

1. each block's features ``[N, C_b]`` are centred and reduced to a common ``width`` by PCA (numpy
   SVD, signs fixed so the largest loading of each component is positive), then scaled to unit
   total variance, so no block dominates by its scale;
2. ``align="procrustes"``: each block's reduced coordinates are rotated onto the previous block's
   by orthogonal Procrustes on the same rows (the same windows pass through every block), so the
   blocks share axes; ``"none"`` leaves each block in its own PCA basis;
3. per species and block, the centroid of its rows: ``[S, B, width]``;
4. one 2-D embedding fitted on all ``S x B`` centroids together: ``pca`` (deterministic, default),
   ``tsne`` (scikit-learn, seeded) or ``umap`` (optional extra, umap-learn; seeded, but its numbers
   move with numba versions);
5. a species' trajectory length is the sum of its 2-D segment lengths; the ``showcase`` longest
   are drawn in colour, the rest faded, a square at the first block and a diamond at the last.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.linalg import orthogonal_procrustes  # noqa: E402

from birdclef_eos.report.figures import save_figure  # noqa: E402
from birdclef_eos.report.trajectories_config import ALIGNS, METHODS  # noqa: E402

UMAP_PIN = "umap-learn==0.5.12"


class TrajectoryError(ValueError):
    pass


@dataclass
class Trajectories:
    """species: [S] labels; blocks: [B] block indices in path order; points: [S, B, 2] float64
    centroid coordinates in the joint 2-D embedding; lengths: [S] 2-D path lengths; showcase: indices
    into ``species`` of the longest paths, longest first; counts: [S] rows per species; width: the
    common width the blocks were reduced to; method, align, seed: how."""
    species: list[str]
    blocks: list[int]
    points: np.ndarray
    lengths: np.ndarray
    showcase: list[int]
    counts: list[int]
    width: int
    method: str
    align: str
    seed: int

    def as_dict(self, digits: int = 6) -> dict:
        """JSON-ready: per species its block coordinates and path length; the showcase names."""
        return {"method": self.method, "align": self.align, "seed": self.seed, "width": self.width,
                "blocks": self.blocks, "showcase": [self.species[i] for i in self.showcase],
                "species": {s: {"rows": self.counts[i], "length": round(float(self.lengths[i]), digits),
                                "points": np.round(self.points[i], digits).tolist()}
                            for i, s in enumerate(self.species)}}


def pca(x: np.ndarray, k: int) -> np.ndarray:
    """``x [N, C]`` centred and projected on its first ``k`` principal axes: ``[N, k]``; each axis'
    sign fixed so that its largest-magnitude loading is positive (SVD signs are arbitrary)."""
    xc = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:k]
    flip = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    return xc @ (vt * np.where(flip == 0, 1.0, flip)[:, None]).T


def reduce_blocks(features: list[np.ndarray], width: int, align: str) -> list[np.ndarray]:
    """Each block ``[N, C_b]`` -> ``[N, width]`` (PCA, unit total variance), optionally rotated
    onto the previous block (orthogonal Procrustes on the shared rows)."""
    if align not in ALIGNS:
        raise TrajectoryError(f"align {align!r}: expected one of {' | '.join(ALIGNS)}")
    out = []
    for b, x in enumerate(features):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(features[0]):
            raise TrajectoryError(f"block {b}: features of shape {x.shape}, expected [{len(features[0])}, C]")
        z = pca(x, width)
        z /= np.sqrt((z ** 2).sum(axis=1).mean()) or 1.0
        if align == "procrustes" and out:
            rot, _ = orthogonal_procrustes(z, out[-1])
            z = z @ rot
        out.append(z)
    return out


def centroids(reduced: list[np.ndarray], labels: np.ndarray, species: list[str]) -> tuple[np.ndarray, list[int]]:
    """``[S, B, width]`` centroid of each species' rows in each block, and the rows per species."""
    labels = np.asarray(labels).astype(str)
    masks = [labels == s for s in species]
    counts = [int(m.sum()) for m in masks]
    empty = [s for s, n in zip(species, counts) if n == 0]
    if empty:
        raise TrajectoryError(f"species {empty[:3]} have no rows in the features")
    return np.stack([np.stack([z[m].mean(axis=0) for z in reduced]) for m in masks]), counts


def embed_2d(x: np.ndarray, method: str, seed: int, perplexity: float = 10.0) -> np.ndarray:
    """``x [M, w]`` -> ``[M, 2]``, fitted on all rows at once."""
    if method == "pca":
        return pca(x, 2)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perp = min(perplexity, max(1.0, (len(x) - 1) / 3))
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x).astype(np.float64)
    if method == "umap":
        try:
            import umap  # optional extra, kept out of CI
        except ImportError as exc:
            raise TrajectoryError(f"method umap needs umap-learn, not installed: `.venv/bin/pip install "
                                  f"{UMAP_PIN}` (it brings numba; its numbers move with numba versions), "
                                  "or use method pca | tsne") from exc
        model = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
        return model.fit_transform(x).astype(np.float64)
    raise TrajectoryError(f"method {method!r}: expected one of {' | '.join(METHODS)}")


def path_lengths(points: np.ndarray) -> np.ndarray:
    """``[S, B, 2]`` -> ``[S]``: the summed length of each species' segments."""
    return np.linalg.norm(np.diff(points, axis=1), axis=2).sum(axis=1)


def longest(lengths: np.ndarray, species: list[str], n: int) -> list[int]:
    """Indices of the ``n`` longest paths, longest first (ties: species name)."""
    return sorted(range(len(species)), key=lambda i: (-round(float(lengths[i]), 9), species[i]))[:n]


def trajectories(features: list[np.ndarray], blocks: list[int], labels: np.ndarray, species: list[str], *,
                 width: int, align: str = "procrustes", method: str = "pca", seed: int = 0,
                 perplexity: float = 10.0, showcase: int = 6) -> Trajectories:
    """The whole Figure 2 computation: ``features[b]`` is block ``blocks[b]``'s ``[N, C_b]`` array,
    ``labels`` ``[N]`` each row's species; only rows of ``species`` are used."""
    if len(features) != len(blocks) or len(blocks) < 2:
        raise TrajectoryError(f"need at least two blocks with one feature array each, got blocks {blocks}")
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, species)
    if keep.sum() < 3:
        raise TrajectoryError(f"only {int(keep.sum())} rows belong to the {len(species)} species")
    widths = [np.asarray(f).shape[1] for f in features]
    w = int(min(width, *widths, int(keep.sum())))
    reduced = reduce_blocks([np.asarray(f)[keep] for f in features], w, align)
    cents, counts = centroids(reduced, labels[keep], species)
    S, B, _ = cents.shape
    flat = embed_2d(cents.reshape(S * B, w), method, seed, perplexity)
    points = flat.reshape(S, B, 2)
    lengths = path_lengths(points)
    return Trajectories(species=list(species), blocks=list(blocks), points=points, lengths=lengths,
                        showcase=longest(lengths, list(species), showcase), counts=counts, width=w,
                        method=method, align=align, seed=seed)


def plot_trajectories(t: Trajectories, path: str | Path, title: str = "") -> None:
    """Figure 2: faded paths for every species, the showcase in colour, square = first block,
    diamond = last block, the blocks labelled in red along the longest path."""
    fig, ax = plt.subplots(figsize=(7.5, 6))
    colours = plt.get_cmap("tab10")
    for i in range(len(t.species)):
        if i in t.showcase:
            continue
        p = t.points[i]
        ax.plot(p[:, 0], p[:, 1], "-", color="0.75", lw=0.8, alpha=0.7, zorder=1)
        ax.scatter(p[0, 0], p[0, 1], marker="s", s=12, color="0.7", zorder=1)
        ax.scatter(p[-1, 0], p[-1, 1], marker="D", s=12, color="0.7", zorder=1)
    for rank, i in enumerate(t.showcase):
        p, c = t.points[i], colours(rank % 10)
        ax.plot(p[:, 0], p[:, 1], "-o", color=c, lw=2, ms=3, zorder=3,
                label=f"{t.species[i]} (length {t.lengths[i]:.2f})")
        ax.scatter(p[0, 0], p[0, 1], marker="s", s=60, color=c, edgecolors="k", zorder=4)
        ax.scatter(p[-1, 0], p[-1, 1], marker="D", s=60, color=c, edgecolors="k", zorder=4)
    if t.showcase:
        p = t.points[t.showcase[0]]
        for b, (x, y) in zip(t.blocks, p):
            ax.annotate(str(b), (x, y), textcoords="offset points", xytext=(4, 4), color="red", fontsize=8)
    ax.set_xlabel(f"{t.method} 1")
    ax.set_ylabel(f"{t.method} 2")
    ax.set_title(title or f"Per-species centroid trajectories, blocks {t.blocks[0]} -> {t.blocks[-1]}", fontsize=9)
    ax.legend(fontsize=7, loc="best", title="square: first block, diamond: last", title_fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
