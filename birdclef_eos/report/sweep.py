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


def paper_note(result: dict) -> str:
    """The paper's v7 against v6 on the public board, from paper/reported.yaml (never typed here)."""
    paper = result.get("paper") or {}
    if paper.get("v6_public") is None or paper.get("v7_public") is None:
        return ""
    return f" The paper's v7 scored {paper['v7_public'] - paper['v6_public']:+.3f} public against v6."


def boards_phrase(b: dict) -> str:
    pub, priv = b["public"], b["private"]
    return (f"on the hidden files it scores {fmt(pub['pick'], 3)} public / {fmt(priv['pick'], 3)} private against "
            f"v6's {fmt(pub['v6'], 3)} / {fmt(priv['v6'], 3)}: public {verdict(pub['pick_minus_v6'])}, private "
            f"{verdict(priv['pick_minus_v6'])} (paired bootstrap over files)")


def sweep_sentence(result: dict) -> str:
    """Plain sentences: the leak-free pick (the test: each fold's prior fitted without its files) and
    the in-sample pick (an illustration: the prior fitted on the chunks it scores), each on the boards."""
    v6 = result["v6"]
    out = []
    for label, res, oof_v6 in (("The leak-free OOF sweep (each fold's prior fitted without its files; the v7 test)",
                                result.get("leak_free"), (result.get("leak_free") or {}).get("v6_oof")),
                               ("The in-sample OOF sweep (the prior fitted on the chunks it scores; an illustration)",
                                result, v6["oof"])):
        if not res:
            continue
        pick = res["pick"]
        head = (f"{label} picks prior alpha {pick['prior_alpha']:g} and sigma {pick['sigma']:g} (OOF {pick['oof']:.3f}, "
                f"against {fmt(oof_v6, 3)} at v6's alpha {v6['prior_alpha']:g}, sigma {v6['sigma']:g})")
        if pick["prior_alpha"] == v6["prior_alpha"] and pick["sigma"] == v6["sigma"]:
            out.append(head + ": it is v6 itself, so it cannot overfit into a worse submission.")
        elif "boards" not in res:
            out.append(head + "; there is no local hidden set to score it on.")
        else:
            out.append(head + "; " + boards_phrase(res["boards"]) + ".")
    return " ".join(out) + paper_note(result)


def sweep_markdown(result: dict) -> str:
    """The OOF grids (rows: prior alpha, columns: sigma), the picks on the boards, and the sentence."""
    out = []
    grids = [("Leak-free", result.get("leak_free")), ("In-sample (illustration)", result)]
    for title, res in grids:
        if not res:
            continue
        g = res["grid"]
        head = ["prior alpha \\ sigma"] + [f"{s:g}" for s in g["sigma"]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        best = res["pick"]
        for a, row in zip(g["prior_alpha"], g["oof"]):
            cells = [f"**{v:.4f}**" if (a == best["prior_alpha"] and s == best["sigma"]) else f"{v:.4f}"
                     for s, v in zip(g["sigma"], row)]
            lines.append(f"| {a:g} | " + " | ".join(cells) + " |")
        out += [f"v7 sweep, {title.lower()}: OOF macro-AUC of the head's labelled-soundscape OOF after "
                f"post-processing (model {result['model']}; raw OOF {result['raw_oof']:.4f}; bold: the pick).", "",
                *lines, ""]
    if "boards" in result:
        b = result["boards"]
        rows = ["| Submission | prior alpha | sigma | OOF | Local public | Local private | Public - v6 | Private - v6 |",
                "|---|---|---|---|---|---|---|---|",
                f"| v6 | {result['v6']['prior_alpha']:g} | {result['v6']['sigma']:g} | {fmt(result['v6']['oof'], 4)} | "
                f"{fmt(b['public']['v6'], 3)} | {fmt(b['private']['v6'], 3)} | - | - |"]
        for label, res in (("leak-free pick", result.get("leak_free")), ("in-sample pick", result)):
            if res and "boards" in res:
                bb, best = res["boards"], res["pick"]
                rows.append(f"| {label} | {best['prior_alpha']:g} | {best['sigma']:g} | {best['oof']:.4f} | "
                            f"{fmt(bb['public']['pick'], 3)} | {fmt(bb['private']['pick'], 3)} | "
                            f"{interval(bb['public']['pick_minus_v6'], 3)} | {interval(bb['private']['pick_minus_v6'], 3)} |")
        out += rows + [""]
    out += [result["sentence"], ""]
    return "\n".join(out)


def plot_sweep(result: dict, path: str | Path) -> None:
    """Heat maps of the leak-free and the in-sample OOF grids with each pick, v6 and v7 marked."""
    panels = [("leak-free (the test)", result["leak_free"])] if result.get("leak_free") else []
    panels.append(("in-sample (illustration)", result))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), squeeze=False)
    for ax, (title, res) in zip(axes[0], panels):
        g = res["grid"]
        scores = np.asarray(g["oof"], dtype=float)
        im = ax.imshow(scores, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(g["sigma"])), [f"{s:g}" for s in g["sigma"]])
        ax.set_yticks(range(len(g["prior_alpha"])), [f"{a:g}" for a in g["prior_alpha"]])
        ax.set_xlabel("Gaussian sigma (chunks)")
        ax.set_ylabel("site/hour prior alpha")
        fig.colorbar(im, ax=ax, label="OOF macro-AUC")
        for name, k, marker, color in (("pick", res["pick"], "*", "red"), ("v6", result["v6"], "o", "white"),
                                       ("v7", result["v7"], "s", "orange")):
            if k["prior_alpha"] in g["prior_alpha"] and k["sigma"] in g["sigma"]:
                ax.scatter(g["sigma"].index(k["sigma"]), g["prior_alpha"].index(k["prior_alpha"]), marker=marker, s=120,
                           facecolors="none" if marker != "*" else color, edgecolors=color, label=name, linewidths=2)
        ax.set_title(f"v7 sweep, {title}")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.25, 1.0), frameon=False)
    fig.tight_layout()
    save_figure(fig, path)
