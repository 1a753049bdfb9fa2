"""The v7 sweep's table, sentence and heat map."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from birdclef_eos.report.figures import save_figure  # noqa: E402
from birdclef_eos.report.tables import fmt, interval  # noqa: E402


def verdict(d: dict | None) -> str:
    """loses | wins | ties (interval includes 0) for a difference pick - v6 with its interval."""
    if not d or d.get("low") is None:
        return "cannot be told apart from v6 (no interval)"
    if d["high"] < 0:
        return "loses to v6"
    if d["low"] > 0:
        return "beats v6"
    return "cannot be told apart from v6"


def sweep_sentence(result: dict) -> str:
    """One plain sentence: what the OOF picked, and whether the pick loses on the boards here."""
    pick, v6 = result["pick"], result["v6"]
    head = (f"The OOF sweep picks prior alpha {pick['prior_alpha']:g} and sigma {pick['sigma']:g} "
            f"(OOF {pick['oof']:.3f}, against {fmt(v6['oof'], 3)} at v6's alpha {v6['prior_alpha']:g}, sigma {v6['sigma']:g})")
    if "boards" not in result:
        return head + "; there is no local hidden set to score it on."
    pub, priv = result["boards"]["public"], result["boards"]["private"]
    same = pick["prior_alpha"] == v6["prior_alpha"] and pick["sigma"] == v6["sigma"]
    if same:
        return head + ": it is v6 itself, so here the OOF sweep does not overfit into a worse submission."
    return (head + f"; on the hidden files it scores {pub['pick']:.3f} public / {priv['pick']:.3f} private against v6's "
            f"{pub['v6']:.3f} / {priv['v6']:.3f}: public {verdict(pub['pick_minus_v6'])}, private "
            f"{verdict(priv['pick_minus_v6'])} (paired bootstrap over files). The paper's v7 lost 0.018 public.")


def sweep_markdown(result: dict) -> str:
    """The OOF grid (rows: prior alpha, columns: sigma), the pick on the boards, and the sentence."""
    g = result["grid"]
    head = ["prior alpha \\ sigma"] + [f"{s:g}" for s in g["sigma"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = result["pick"]
    for a, row in zip(g["prior_alpha"], g["oof"]):
        cells = [f"**{v:.4f}**" if (a == best["prior_alpha"] and s == best["sigma"]) else f"{v:.4f}"
                 for s, v in zip(g["sigma"], row)]
        lines.append(f"| {a:g} | " + " | ".join(cells) + " |")
    out = ["v7 sweep: OOF macro-AUC of the head's labelled-soundscape OOF after post-processing "
           f"(model {result['model']}; raw OOF {result['raw_oof']:.4f}; bold: the pick).", "", *lines, ""]
    if "boards" in result:
        b = result["boards"]
        out += ["| Submission | prior alpha | sigma | OOF | Local public | Local private | Public - v6 | Private - v6 |",
                "|---|---|---|---|---|---|---|---|",
                f"| v6 | {result['v6']['prior_alpha']:g} | {result['v6']['sigma']:g} | {fmt(result['v6']['oof'], 4)} | "
                f"{b['public']['v6']:.3f} | {b['private']['v6']:.3f} | - | - |",
                f"| OOF pick | {best['prior_alpha']:g} | {best['sigma']:g} | {best['oof']:.4f} | {b['public']['pick']:.3f} | "
                f"{b['private']['pick']:.3f} | {interval(b['public']['pick_minus_v6'], 3)} | "
                f"{interval(b['private']['pick_minus_v6'], 3)} |", ""]
    out += [result["sentence"], ""]
    return "\n".join(out)


def plot_sweep(result: dict, path: str | Path) -> None:
    """Heat map of the OOF grid with the pick, v6 and v7 marked."""
    g = result["grid"]
    scores = np.asarray(g["oof"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    im = ax.imshow(scores, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(g["sigma"])), [f"{s:g}" for s in g["sigma"]])
    ax.set_yticks(range(len(g["prior_alpha"])), [f"{a:g}" for a in g["prior_alpha"]])
    ax.set_xlabel("Gaussian sigma (chunks)")
    ax.set_ylabel("site/hour prior alpha")
    fig.colorbar(im, ax=ax, label="OOF macro-AUC")
    for name, marker, color in (("pick", "*", "red"), ("v6", "o", "white"), ("v7", "s", "orange")):
        k = result[name]
        if k["prior_alpha"] in g["prior_alpha"] and k["sigma"] in g["sigma"]:
            ax.scatter(g["sigma"].index(k["sigma"]), g["prior_alpha"].index(k["prior_alpha"]), marker=marker, s=120,
                       facecolors="none" if marker != "*" else color, edgecolors=color, label=name, linewidths=2)
    ax.legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False)
    ax.set_title("v7 sweep: post-processing knobs scored on the OOF")
    fig.tight_layout()
    save_figure(fig, path)
