"""The paper's plots other than Figure 1: the per-block probe curve and the local leaderboard.

Every figure is saved through ``save_figure``: atomically, without the matplotlib version in the
PNG metadata, so the same numbers give the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from birdclef_eos.io.files import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: float | None = None) -> None:
    """Write ``fig`` to ``path`` (PNG) atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"Software": None}, **({"dpi": dpi} if dpi else {}))
    plt.close(fig)


def plot_probe(result: dict, blocks: list[dict], path: str | Path) -> None:
    """Per-block kNN accuracy with its 95% interval, the linear probe, chance, and the selection.

    ``result`` is metrics/probe/probe.json; ``blocks`` the probed entries of blocks.json.
    """
    idx = [b["index"] for b in blocks]
    s = [result["blocks"][b["name"]] for b in blocks]
    acc = np.array([x["accuracy"] for x in s])
    err = np.array([[a - x["ci_low"] for a, x in zip(acc, s)], [x["ci_high"] - a for a, x in zip(acc, s)]])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.errorbar(idx, acc, yerr=err, fmt="o-", capsize=3, label=f"kNN-{result['choices']['k']} (95% CI)")
    if all("linear_accuracy" in x for x in s):
        ax.plot(idx, [x["linear_accuracy"] for x in s], "s--", alpha=0.6, label="linear probe")
    chosen = [i for i in idx if i in result["selected"]]
    ax.scatter(chosen, [result["blocks"][f"block_{i:02d}"]["accuracy"] for i in chosen], s=160,
               facecolors="none", edgecolors="red", label="selected")
    ax.axhline(result["chance"], color="grey", ls=":", label=f"chance {result['chance']:.3f}")
    ax.set_xlabel("block")
    ax.set_ylabel("top-1 accuracy")
    ax.set_xticks(idx)
    ax.set_title(f"Per-block probe, {result['backbone']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_boards(local: dict, reported: dict, path: str | Path) -> None:
    """Bars of each submission's local public and private score, the paper's public LB as ticks.

    ``local``: {name: {"public", "private"}}; ``reported``: {name: {"public", ...}} (Table 2).
    """
    names = list(local) or list(reported)
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 2), 3.5))
    for off, board, colour in ((-0.2, "public", "tab:blue"), (0.2, "private", "tab:orange")):
        heights = [local.get(n, {}).get(board) for n in names]  # None: undefined on this board
        ax.bar([i + off for i in x], [float("nan") if h is None else h for h in heights],
               width=0.4, label=f"local {board}", color=colour)
    rep = [reported.get(n, {}).get("public", float("nan")) for n in names]
    ax.plot(list(x), rep, "k_", markersize=22, mew=2, label="paper public LB")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("macro ROC-AUC")
    shown = [v for n in names for v in (local.get(n, {}).get("public"), local.get(n, {}).get("private")) if v]
    ax.set_ylim(min([0.5, *shown]) - 0.05, 1.06)
    ax.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
    ax.set_title("Submissions on the local public and private boards")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
