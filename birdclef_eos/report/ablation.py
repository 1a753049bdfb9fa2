"""The ablation table: does the probe pick the best layers for the task?

Each row is a head that reads other blocks than the probe's choice; every difference is
"probe's choice minus variant" in macro-AUC with its paired bootstrap interval over files; the
sentences under the table are generated from those numbers and from the rank correlation of
the focal and soundscape probe rankings.
"""
from __future__ import annotations

import math

EVALS = (("oof", "OOF"), ("public", "the public board"), ("private", "the private board"))
AGREE_RHO = 0.7    # rho at or above: the rankings agree
PARTLY_RHO = 0.4   # rho at or above (and below AGREE_RHO): they agree only partly
FEW_FILES = 10     # fewer files than this: the sentence says how few (a bootstrap over 2 files is crude)


def fmt(x, digits: int = 3) -> str:
    """A number, or "undefined" (null or NaN: a score with no defined value, such as a macro-AUC
    where no class has both positives and negatives)."""
    return "undefined" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def verdict(interval: dict) -> str:
    """better (the probe's choice: the interval lies above 0), worse (below 0), within noise, or
    no interval (a single file: nothing to resample)."""
    if interval["low"] is None or interval["high"] is None:
        return "no interval"
    if interval["low"] > 0:
        return "better"
    if interval["high"] < 0:
        return "worse"
    return "within noise"


def interval_text(interval: dict, digits: int = 3) -> str:
    if interval["difference"] is None:  # a board where the score does not exist
        return "undefined"
    if interval["low"] is None or interval["high"] is None:
        return f"{signed(interval['difference'], digits)} [one file: no interval]"
    return (f"{signed(interval['difference'], digits)} [{signed(interval['low'], digits)}, "
            f"{signed(interval['high'], digits)}]")


def blocks_text(blocks) -> str:
    return ", ".join(str(b) for b in blocks)


def comparison_sentence(label: str, comparisons: dict[str, dict], same_blocks: bool, digits: int = 3) -> str:
    """One sentence on the probe's choice against one variant over the evaluations present."""
    parts = []
    for key, name in EVALS:
        if key in comparisons:
            c = comparisons[key]
            if c["difference"] is None:  # a board where the score does not exist
                parts.append(c.get("undefined") or f"undefined on {name}")  # the reason names the board
                continue
            v = verdict(c)
            word = {"better": "better", "worse": "worse", "within noise": "within noise",
                    "no interval": "not resampled"}[v]
            few = f"; only {c['n_files']} files" if 1 < c.get("n_files", FEW_FILES) < FEW_FILES else ""
            parts.append(f"{word} on {name} ({interval_text(c, digits)}{few})")
    verdicts = {verdict(comparisons[k]) for k, _ in EVALS
                if k in comparisons and comparisons[k]["difference"] is not None}
    if "better" in verdicts and "worse" not in verdicts:
        head = f"The probe's choice beats {label} here"
    elif "worse" in verdicts and "better" not in verdicts:
        head = f"The probe's choice loses to {label} here"
    elif verdicts <= {"within noise", "no interval"}:
        head = f"The probe's choice and {label} are within noise of each other here"
    else:
        head = f"The probe's choice and {label} trade places here"
    note = " (both read the same blocks)" if same_blocks else ""
    return f"{head}{note}: {'; '.join(parts)}."


def agreement_sentence(agreement: dict, focal_top: list[int], soundscape_top: list[int]) -> str:
    rho, n = agreement["rho"], agreement["n_blocks"]
    if rho is None or not math.isfinite(rho):
        why = agreement.get("undefined", f"{n} block(s) scored by both")
        return f"The focal and soundscape rankings cannot be compared here: their rank correlation is undefined ({why})."
    if rho >= AGREE_RHO:
        head = "The focal and soundscape probe rankings agree"
    elif rho >= PARTLY_RHO:
        head = "The focal and soundscape probe rankings agree only partly"
    else:
        head = "The focal and soundscape probe rankings do not agree"
    k = len(focal_top)
    shared = sorted(set(focal_top) & set(soundscape_top))
    return (f"{head} (Spearman rho = {rho:.2f} over {n} blocks); the focal top {k} are blocks "
            f"{blocks_text(focal_top)}, the soundscape top {k} blocks {blocks_text(soundscape_top)} "
            f"({len(shared)} in common).")


LABELS = {"last3": "the last three blocks", "embedding": "the final embedding", "best1": "the probe's single best block",
          "all": "all blocks through the scalar mix"}


def variant_label(name: str, choice) -> str:
    if isinstance(choice, str) and choice in LABELS:
        return f"{LABELS[choice]} (`{name}`)"
    return f"`{name}`"


def ablation_markdown(result: dict, said: list[str], digits: int = 3) -> str:
    """The table and its sentences from the ablation result (the stage's ablation.json)."""
    ref = result["reference"]
    boards = result["boards_scored"]
    n_boot, conf = result["bootstrap"]["draws"], result["bootstrap"]["confidence"]
    pct = f"{conf * 100:g}%"
    lines = [f"Ablation: heads that read other blocks than the probe's choice (`{ref['name']}`, "
             f"blocks {blocks_text(ref['blocks'])}), otherwise trained as it. Δ = probe's choice minus variant "
             f"(macro-AUC); [{pct} interval] from a paired bootstrap over files ({n_boot} draws; OOF: labelled "
             f"soundscape files, boards: test files).", ""]
    head = "| Variant | Blocks | Head | OOF | Δ OOF |"
    rule = "|---|---|---|---|---|"
    if boards:
        head += " Public | Δ public | Private | Δ private |"
        rule += "---|---|---|---|"
    lines += [head, rule]
    row = f"| {ref['name']} (probe's choice) | {blocks_text(ref['blocks'])} | {ref['head']} | {fmt(ref['oof'], digits)} | — |"
    if boards:
        row += f" {fmt(ref['public'], digits)} | — | {fmt(ref['private'], digits)} | — |"
    lines.append(row)
    for name, v in result["variants"].items():
        c = v["comparison"]
        row = (f"| {name} ({v['choice']}) | {blocks_text(v['blocks'])} | {v['head']} | {fmt(v['oof'], digits)} | "
               f"{interval_text(c['oof'], digits)} |")
        if boards:
            row += (f" {fmt(v['public'], digits)} | {interval_text(c['public'], digits)} | "
                    f"{fmt(v['private'], digits)} | {interval_text(c['private'], digits)} |")
        lines.append(row)
    sp = result["soundscape_probe"]
    lines += ["", f"Probe rankings: focal kNN accuracy (the probe stage) and a {sp['method']} probe's "
              f"out-of-fold macro-AUC on {sp['n_chunks']} labelled soundscape chunks ({sp['n_files']} files, "
              f"{sp['folds']} folds grouped by file).", "",
              "| Block | Focal accuracy | Focal rank | Soundscape macro-AUC | Soundscape rank |", "|---|---|---|---|---|"]
    for name, b in sp["blocks"].items():
        lines.append(f"| {name.split('_')[-1]} | {fmt(b.get('focal_accuracy'), digits)} | {b.get('focal_rank', '—')} | "
                     f"{fmt(b['macro_auc'], digits)} | {b['rank']} |")
    lines += ["", *said]
    return "\n".join(lines) + "\n"


def sentences(result: dict, digits: int = 3) -> list[str]:
    """Plain sentences from the numbers: the probe's choice against each variant (the final
    embedding and the last blocks first), then the two rankings' agreement."""
    out = []
    if not result["reference"].get("is_probe_choice", True):
        out.append(f"Note: `{result['reference']['name']}` does not read the probe's selection "
                   f"({blocks_text(result['reference']['probe_selected'])}), so 'probe's choice' below means its blocks.")
    order = {"embedding": 0, "last3": 1}
    for name, v in sorted(result["variants"].items(), key=lambda kv: (order.get(kv[1]["choice"], 2), kv[0])):
        same = list(v["blocks"]) == list(result["reference"]["blocks"])
        out.append(comparison_sentence(variant_label(name, v["choice"]), v["comparison"], same, digits))
    sp = result["soundscape_probe"]
    out.append(agreement_sentence(sp["agreement"], sp["focal_top"], sp["soundscape_top"]))
    return out
