"""The plateau and the shake-up: figures and the plain sentences that read them."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from birdclef_eos.report.figures import save_figure  # noqa: E402

BOARDS = ("public", "private")


def arr(values) -> np.ndarray:
    """A float array of a JSON list (None -> NaN: no interval)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def lifts(entry: dict) -> bool:
    """A gain whose paired interval lies above zero."""
    return entry.get("gain_low") is not None and entry["gain_low"] > 0


def undefined(entry: dict) -> str | None:
    """Why a board's entry has no score (a board where no label column has both classes), else None."""
    return entry.get("undefined")


def plateau_sentences(result: dict) -> list[str]:
    """Does the plateau appear (real partners), and at what strength does a partner break it (control)."""
    out = []
    for partner, entry in result["partners"].items():
        bits = []
        for board in BOARDS:
            c = entry[board]
            if undefined(c):
                bits.append(undefined(c))
                continue
            gains = [(w, g, lo, hi) for w, g, lo, hi in zip(c["weights"], c["gain"], c["gain_low"], c["gain_high"]) if w > 0]
            w, g, lo, hi = max(gains, key=lambda t: t[1])
            if lo is None or hi is None:
                bits.append(f"{board}: best gain {g:+.4f} at weight {w:g} (no interval: one file on this board)")
                continue
            verdict = "above zero" if lo > 0 else "below zero" if hi < 0 else "within noise"
            bits.append(f"{board}: best gain {g:+.4f} at weight {w:g} [{lo:+.4f}, {hi:+.4f}], {verdict} "
                        f"(standalone {c['standalone']:.3f} against the base's {c['score'][0]:.3f})")
        out.append(f"Partner {partner}: " + "; ".join(bits) + ".")
    lifting = sorted({p for p, e in result["partners"].items() for b in BOARDS if not undefined(e[b])
                      for w, lo in zip(e[b]["weights"], e[b]["gain_low"]) if w > 0 and lifts({"gain_low": lo})})
    scored = any(not undefined(e[b]) for e in result["partners"].values() for b in BOARDS)
    out.append("The plateau is not read: no board has a score." if not scored else
               "The plateau appears here: no real partner lifts the base beyond noise at any weight."
               if not lifting else f"No plateau for {', '.join(lifting)} here: it lifts the base beyond noise at some weight.")
    ctl, w = result["control"], result["control_weight"]
    gone = [undefined(e) for e in next(iter(ctl.values()), {}).values() if isinstance(e, dict) and undefined(e)]
    if ctl and gone:   # one board has no score: the gain by strength on the other, and why
        kept = [b for b in BOARDS if not undefined(next(iter(ctl.values()))[b])]
        gains = "; ".join(f"{b}: " + ", ".join(f"{e['target']:g}: {e[b]['gain']:+.4f}" for e in ctl.values()) for b in kept)
        out.append(f"Control partners at weight {w:g}, the gain by strength: {gains or 'none'} ({'; '.join(gone)}).")
    elif ctl:
        base_pub = next(iter(ctl.values()))["public"]["base"]
        base_priv = next(iter(ctl.values()))["private"]["base"]
        breaking = [e for e in ctl.values() if lifts(e["public"]) and lifts(e["private"])]
        weakest, strongest = min(ctl.values(), key=lambda e: e["target"]), max(ctl.values(), key=lambda e: e["target"])
        span = (f"the gain at weight {w:g} grows from {weakest['public']['gain']:+.4f} public / "
                f"{weakest['private']['gain']:+.4f} private at strength {weakest['target']:g} to "
                f"{strongest['public']['gain']:+.4f} / {strongest['private']['gain']:+.4f} at {strongest['target']:g} "
                f"(the base: {base_pub:.3f} public, {base_priv:.3f} private)")
        if breaking:
            first = min(breaking, key=lambda e: e["target"])
            out.append(f"Control partners: {span}; the gain's interval excludes zero on both boards from strength "
                       f"{first['target']:g} on (a strength gap of {first['target'] - 0.5 * (base_pub + base_priv):+.3f} "
                       f"to the base). How large the gain is, not whether it is above zero, is the plateau: at a "
                       f"small weight even a partner of strength {strongest['target']:g} moves the base by "
                       f"{max(strongest['public']['gain'], strongest['private']['gain']):.3f} at most.")
        else:
            out.append(f"Control partners: {span}; no control up to strength {strongest['target']:g} lifts the base "
                       f"on both boards beyond noise.")
    return out


def plot_plateau(result: dict, path: str | Path) -> None:
    """Left, middle: blend score against the partner's weight (public, private) with bootstrap
    bands, one line per real partner; right: the gain of a control partner at the fixed weight
    against its strength, on both boards (control: made from the hidden labels, never a submission)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, board in zip(axes[:2], BOARDS):
        for i, (partner, entry) in enumerate(result["partners"].items()):
            c = entry[board]
            if undefined(c):
                ax.text(0.5, 0.5, undefined(c), ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
                continue
            ax.plot(c["weights"], c["score"], marker="o", color=colours[i % len(colours)], label=f"{result['base']} + {partner}")
            ax.fill_between(c["weights"], arr(c["low"]), arr(c["high"]), color=colours[i % len(colours)], alpha=0.15)
        ax.set_xlabel("partner weight")
        ax.set_ylabel(f"{board} macro-AUC")
        ax.set_title(f"{board} board: blend score vs weight")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax = axes[2]
    ctl = result["control"]
    if ctl:
        for j, board in enumerate(BOARDS):
            if undefined(next(iter(ctl.values()))[board]):
                continue
            xs = [e["target"] for e in ctl.values()]
            g = arr([e[board]["gain"] for e in ctl.values()])
            lo = arr([e[board]["gain_low"] for e in ctl.values()])
            hi = arr([e[board]["gain_high"] for e in ctl.values()])
            ax.errorbar(np.array(xs) + (j - 0.5) * 0.003, g, yerr=[np.nan_to_num(g - lo), np.nan_to_num(hi - g)],
                        marker="s", capsize=3, label=board)
            ax.axvline(next(iter(ctl.values()))[board]["base"], color=colours[j], ls=":", lw=1)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("control partner strength (macro-AUC)")
        ax.set_ylabel(f"gain over the base at weight {result['control_weight']:g}")
        ax.set_title("control (from the hidden labels)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def shakeup_sentences(result: dict) -> list[str]:
    """The paper: every standalone model gained from public to private and the blend lost."""
    out = []
    subs = result["submissions"]
    for name, s in subs.items():
        kind = "blend" if name in result["blends"] else "standalone"
        claimed = "lost" if kind == "blend" else "gained"
        if s["mean"] is None:
            out.append(f"{name} ({kind}): private - public undefined ({s['undefined']}).")
            continue
        p = s["p_gain"] if kind == "standalone" else 1 - s["p_gain"]
        ours = "undefined" if s["observed"] is None else f"{s['observed']:+.4f}"  # a board of our split unscorable
        out.append(f"{name} ({kind}): private - public {ours} on our split; over "
                   f"{result['splits']} random {result['public_share']:.0%}/{1 - result['public_share']:.0%} splits "
                   f"mean {s['mean']:+.4f} [{s['low']:+.4f}, {s['high']:+.4f}]; the paper's direction ({claimed}) "
                   f"comes up in {p:.0%} of splits.")
    swaps = result["swaps"]
    swaps = [t for t in swaps if t["p_swap"] is not None]
    if swaps:
        worst = max(swaps, key=lambda t: t["p_swap"])
        out.append(f"The likeliest swap from public to private is {worst['a']} and {worst['b']}: {worst['p_swap']:.0%} "
                   "of splits.")
    return out


def plot_shakeup(result: dict, path: str | Path) -> None:
    """Left: each submission's private - public over random splits (box) and on our split (dot);
    right: the probability that two submissions swap order from public to private."""
    names = list(result["submissions"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    ax.boxplot([result["differences"][n] for n in names], showfliers=False)
    observed = [result["submissions"][n]["observed"] for n in names]
    ax.scatter(range(1, len(names) + 1), [np.nan if v is None else v for v in observed], color="red", zorder=3,
               label="our split")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    ax.set_ylabel("private - public macro-AUC")
    ax.set_title(f"shake-up over {result['splits']} random splits by file")
    ax.legend(fontsize=8)
    ax = axes[1]
    M = np.full((len(names), len(names)), np.nan)
    for t in result["swaps"]:
        i, j = names.index(t["a"]), names.index(t["b"])
        M[i, j] = M[j, i] = np.nan if t["p_swap"] is None else t["p_swap"]
    im = ax.imshow(M, cmap="magma_r", vmin=0, vmax=max(0.5, float(np.nanmax(M)) if np.isfinite(M).any() else 0.5))
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, label="P(order swaps public -> private)")
    ax.set_title("swap probability")
    fig.tight_layout()
    save_figure(fig, path)


def plot_no_shakeup(reason: str, path: str | Path) -> None:
    """The shake-up figure when there is nothing to split (no local hidden labels): the reason."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=9)
    save_figure(fig, path)


def band(d: dict) -> str:
    """``+0.0012 [+0.0001, +0.0030]``, or the difference alone when there is no interval (one file)."""
    if d.get("low") is None or d.get("high") is None:
        return f"{d['difference']:+.4f} (no interval)"
    return f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def strength_sentences(result: dict) -> list[str]:
    """The head's gain against the base's strength (control bases), the paper's regime, and what the
    OOF says of `rank` against `prob`."""
    out = []
    cb = result.get("control_bases")
    if cb and undefined(cb):
        out.append(f"Control bases: {undefined(cb)}.")
    elif cb and cb.get("strengths") and undefined(cb["regime"]["private"]):
        out.append(f"Control bases: {undefined(cb['regime']['private'])}; the head's gain against the base's "
                   "strength is read on the private board, so it is not read here.")
    elif cb and cb.get("strengths"):
        sp = cb["space"]
        pts = sorted(cb["strengths"].values(), key=lambda e: e["target"])
        gains = ", ".join(f"{e['achieved']:.3f}: {e[sp]['private']['difference']:+.4f}" for e in pts)
        r = cb["regime"]
        inside = r["private"]["low"] is not None and r["private"]["low"] > 0
        out.append(f"Control bases (hidden labels plus noise, calibrated like the real base) with {cb['head']} at "
                   f"{cb['weight']:g} in `{sp}` space, private gain by base strength: {gains}. At the paper's regime "
                   f"(base {r['achieved']:.3f}, {cb['head']} {r['private']['head']:.3f}) the gain is "
                   f"{band(r['private'])}{', above zero' if inside else ''}; the head's effective share there is "
                   f"{100 * pts[[e['target'] for e in pts].index(r['strength'])][sp]['effective_share']:.1f}% of "
                   f"the blend's spread.")
        other = [s for s in ("prob", "rank") if s != sp][0]
        e = pts[[x["target"] for x in pts].index(r["strength"])]
        if other in e:
            out.append(f"In `{other}` space the same head at the same weight gains {band(e[other]['private'])} there (effective share "
                       f"{100 * e[other]['effective_share']:.1f}%).")
    oof = result.get("space_on_oof")
    if oof:
        d = oof["rank_minus_prob"]
        out.append(f"On the OOF (base {oof['base']:.3f}, head {oof['head']:.3f}, head weight {oof['weight']:g}): "
                   f"rank {oof['rank']['macro_auc']:.4f}, prob {oof['prob']['macro_auc']:.4f}, rank - prob "
                   f"{band(d)}; the head's effective share "
                   f"{100 * oof['rank']['effective_share']['head']['effective']:.1f}% in rank, "
                   f"{100 * oof['prob']['effective_share']['head']['effective']:.1f}% in prob.")
    return out


def plot_strength(result: dict, path: str | Path) -> None:
    """The head's gain (blend minus the base alone, paired bootstrap band) against the control base's
    strength, one panel per board, a line per blend space; the paper's regime marked."""
    cb = result["control_bases"]
    if undefined(cb):
        plot_no_shakeup(f"The plateau against base strength: {undefined(cb)}", path)
        return
    pts = sorted(cb["strengths"].values(), key=lambda e: e["target"])
    x = np.array([e["achieved"] for e in pts])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, board in zip(axes, BOARDS):
        for sp, style in (("prob", "o-"), ("rank", "s--")):
            if sp not in pts[0] or undefined(pts[0][sp][board]):
                continue
            g = arr([e[sp][board]["difference"] for e in pts])
            ax.plot(x, g, style, label=f"{cb['head']} at {cb['weight']:g}, {sp} space"
                                      + (" (blend.space)" if sp == cb["space"] else ""))
            ax.fill_between(x, arr([e[sp][board]["low"] for e in pts]), arr([e[sp][board]["high"] for e in pts]),
                            alpha=0.15)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(cb["regime"]["achieved"], color="red", ls=":", lw=1,
                   label=f"paper's regime (base ~{cb['regime_target']:g}, head ~0.88)")
        ax.set_xlabel("control base macro-AUC (hidden labels + noise)")
        ax.set_title(f"{board} board")
    axes[0].set_ylabel("gain of the blend over the base alone")
    axes[0].legend(fontsize=7)
    alone = ", ".join("undefined " + b if undefined(pts[0][cb["space"]][b]) else f"{pts[0][cb['space']][b]['head']:.3f} {b}"
                      for b in BOARDS)
    fig.suptitle(f"The plateau against base strength (control bases, analysis only); {cb['head']} standalone here: {alone}")
    fig.tight_layout()
    save_figure(fig, path)
