"""Figure 1: the backbone's architecture drawn from the block inventory (models/blocks.json).

One bar per MBConv block, grouped and coloured by stage; bar height grows with the block's width.
Each stage is labelled with its blocks, width and spatial size; the blocks the head reads (when
known) get a red dashed outline, as in the paper's figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from birdclef_eos.report.figures import save_figure  # noqa: E402


def stages_of(blocks: list[dict]) -> list[dict]:
    """[{stage, first, last, channels, spatial, x0, x1}] in block order (x in bar positions)."""
    out = []
    for pos, block in enumerate(blocks):
        if not out or out[-1]["stage"] != block["stage"]:
            out.append({"stage": block["stage"], "first": block["index"], "x0": pos,
                        "channels": block["channels"], "spatial": block["spatial"]})
        out[-1].update(last=block["index"], x1=pos)
    return out


def bar_height(channels: int, widest: int) -> float:
    return 0.25 + 0.75 * (channels / widest) ** 0.5


def draw_box(ax, x: float, text: str, width: float = 1.6) -> None:
    ax.add_patch(FancyBboxPatch((x, 0.2), width, 0.6, boxstyle="round,pad=0.05", fc="#eeeeee", ec="#555555"))
    ax.text(x + width / 2, 0.5, text, ha="center", va="center", fontsize=7)


def draw_architecture(inventory: dict, path: str | Path, head_blocks: list[int] | None = None,
                      title: str | None = None) -> None:
    """Write the diagram of ``inventory`` (blocks.json) to ``path`` (PNG)."""
    blocks = inventory["blocks"]
    widest = max(b["channels"] for b in blocks)
    head = set(head_blocks or [])
    colours = plt.get_cmap("tab10")
    n = len(blocks)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.42 * n + 5), 3.4), dpi=150)
    draw_box(ax, -2.2, "audio\n" + f"{inventory.get('window_samples', '?')} samples\n"
             f"@ {inventory.get('sample_rate', '?')} Hz")
    for pos, block in enumerate(blocks):
        h = bar_height(block["channels"], widest)
        ax.add_patch(Rectangle((pos + 0.1, 0.5 - h / 2), 0.8, h, fc=colours((block["stage"] - 1) % 10),
                               ec="black", lw=0.5, alpha=0.85))
        ax.text(pos + 0.5, 0.5 - h / 2 - 0.07, str(block["index"]), ha="center", va="top", fontsize=6)
        if block["index"] in head:
            ax.add_patch(Rectangle((pos + 0.02, 0.5 - h / 2 - 0.04), 0.96, h + 0.08, fill=False,
                                   ec="red", ls="--", lw=1.4))
    for stage in stages_of(blocks):
        mid = (stage["x0"] + stage["x1"] + 1) / 2
        blocks_text = (f"{stage['first']}-{stage['last']}" if stage["first"] != stage["last"]
                       else str(stage["first"]))
        h, w = stage["spatial"]
        ax.text(mid, 1.12, f"stage {stage['stage']}\nblocks {blocks_text}\n{stage['channels']} ch\n{h}x{w}",
                ha="center", va="bottom", fontsize=6.5)
    tail = []
    if inventory.get("embedding_output"):
        tail.append(f"embedding\n{inventory.get('embedding_channels', '?')}")
    tail.append(f"logits\n{inventory.get('logits_channels', '?')}")
    draw_box(ax, n + 0.6, "\n".join(tail))
    if head:
        ax.plot([], [], color="red", ls="--", label="blocks the head reads")
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.set_xlim(-2.5, n + 2.5)
    ax.set_ylim(-0.15, 1.75)
    ax.axis("off")
    ax.set_title(title or f"{inventory.get('backbone', 'backbone')}: {n} MBConv blocks", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
