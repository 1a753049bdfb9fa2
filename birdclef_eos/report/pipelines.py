"""Figure 3: the two inference pipelines, drawn from the settings in force.

Left: a standalone submission (the paper's v6): backbone, the head's blocks and folds, TTA, then
each post-processing step that is switched on, with its knob values. Right: a blend (the paper's
eos7): its parts with their resolved weights, where they are mixed, and the taxonomy smoothing.
Every label is built from the arguments (the params and the head's metrics), so the figure
changes whenever a weight or a step does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from birdclef_eos.report.figures import save_figure  # noqa: E402
from birdclef_eos.scoring.blend import resolve_weights  # noqa: E402

@dataclass
class BlendDrawing:
    """name: the blend; parts: [(part name, resolved weight, one-line description)]; steps: what
    follows the weighted sum, in order (mixing space first, then each smoothing), as box labels."""
    name: str
    parts: list[tuple[str, float, str]]
    steps: list[str]


def standalone_steps(name: str, backbone: str, head: dict, tta: list[float], knobs: dict) -> list[str]:
    """Box labels of a standalone submission, top to bottom. ``head``: {variant, head, blocks,
    n_folds}; ``knobs``: every resolved post-processing knob (a step at 0 is off and not drawn)."""
    shifts = ", ".join(f"{s:+g}" for s in tta)
    steps = [f"{backbone} (frozen)\n5-s chunk at shifts [{shifts}] s",
             f"blocks {head['blocks']} -> {head['head']} head\n({head['variant']}, {head['n_folds']}-fold mean)",
             f"TTA: mean of {len(tta)} shift(s) in {knobs['tta_space']} space"]
    if knobs["prior_alpha"]:
        steps.append(f"site/hour prior\nlogit += {knobs['prior_alpha']:g} x log-odds(p_prior)")
    if knobs["sigma"]:
        steps.append(f"Gaussian over 12 chunks\nsigma {knobs['sigma']:g} ({knobs['smooth_space']}, {knobs['smooth_mode']})")
    if knobs["rank_power"]:
        steps.append(f"rank-aware scaling\np x (file max)^{knobs['rank_power']:g}")
    if knobs["neighbour_base"]:
        steps.append(f"adaptive neighbour smoothing\nbase {knobs['neighbour_base']:g}")
    if knobs["tax_genus_alpha"] or knobs["tax_class_alpha"]:
        steps.append(f"taxonomy smoothing\ngenus {knobs['tax_genus_alpha']:g}, class {knobs['tax_class_alpha']:g}")
    steps.append(f"submissions/{name}")
    return steps


def blend_drawing(name: str, entry: dict, blend: dict, describe: dict[str, str]) -> BlendDrawing:
    """The right panel from ``blends.<name>`` (``entry``: parts, taxonomy) and the shared ``blend``
    section (weight, space, taxonomy); ``describe`` gives a part's one-line description."""
    weights = resolve_weights(name, entry["parts"], {"weight": blend["weight"]}, entry.get("normalise", False))
    parts = [(p, w, describe.get(p, "")) for p, w in weights.items()]
    steps = [f"weighted sum in {entry.get('space', blend['space'])} space"]
    if entry.get("taxonomy"):
        tax = blend["taxonomy"]
        steps.append(f"taxonomy smoothing\ngenus {tax['genus']:g}, class {tax['class']:g}")
    steps.append(f"submissions/{name}")
    return BlendDrawing(name=name, parts=parts, steps=steps)


def box(ax, x: float, y: float, text: str, w: float = 0.8, h: float = 0.09, colour: str = "#e8eef7") -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01", fc=colour, ec="#445"))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5)


def arrow(ax, x0: float, y0: float, x1: float, y1: float, label: str = "") -> None:
    ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "#333"})
    if label:
        ax.text((x0 + x1) / 2 + 0.02, (y0 + y1) / 2, label, fontsize=8, color="firebrick", fontweight="bold")


def chain(ax, steps: list[str], top: float, x: float = 0.5, gap: float = 0.13) -> float:
    """Boxes top to bottom joined by arrows; returns the last box's y."""
    y = top
    for i, text in enumerate(steps):
        box(ax, x, y, text, colour="#fbe9d0" if i == len(steps) - 1 else "#e8eef7")
        if i < len(steps) - 1:
            arrow(ax, x, y - 0.05, x, y - gap + 0.05)
            y -= gap
    return y


def plot_pipelines(left_title: str, left: list[str], right_title: str, right: BlendDrawing,
                   path: str | Path) -> None:
    """Figure 3: standalone pipeline left, blend right."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 6.5))
    for ax in (a, b):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
    a.set_title(left_title, fontsize=10)
    chain(a, left, top=0.92)
    b.set_title(right_title, fontsize=10)
    n = len(right.parts)
    xs = [(i + 0.5) / n for i in range(n)]
    for (part, w, desc), x in zip(right.parts, xs):
        box(b, x, 0.88, f"{part}\n{desc}" if desc else part, w=min(0.9 / n, 0.45), h=0.1)
        arrow(b, x, 0.83, 0.5, 0.70, label=f"{w:.3g}")
    chain(b, right.steps, top=0.65)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
