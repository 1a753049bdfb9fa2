"""The paper's tables as markdown: Table 1 (probe), probe versus learned weights, Table 2 (boards).

Each function takes the numbers a stage computed (and the paper's, from paper/reported.yaml)
and returns the text; the stage writes it under paper/tables/.
"""
from __future__ import annotations

import pandas as pd


def fmt(x, digits: int) -> str:
    """A score with ``digits`` decimals, or "-" when there is none."""
    return "-" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def by_block(mapping: dict, block: int):
    """``mapping[block]`` for a block-number key written as a string ("24", as paper/reported.yaml
    writes them so DVC can load the file) or as an integer."""
    return mapping[str(block)] if str(block) in mapping else mapping[block]


def table1_markdown(result: dict, blocks: list[dict], reported: dict[int, float]) -> str:
    """Table 1 from metrics/probe/probe.json; a reported column when ``reported`` is not empty."""
    choices = result["choices"]
    head = ["Block", "Stage", "Dim", f"kNN-{choices['k']} [95% CI]", "Linear probe", "Rank"]
    if reported:
        head.append("kNN-5 reported")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in blocks:
        s = result["blocks"][b["name"]]
        cells = [str(b["index"]), str(b["stage"]), str(s["dim"]),
                 f"{s['accuracy']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
                 f"{s['linear_accuracy']:.3f}" if "linear_accuracy" in s else "-", str(s["rank"])]
        if reported:
            cells.append(f"{reported[b['index']]:.3f}" if b["index"] in reported else "-")
        lines.append("| " + " | ".join(cells) + " |")
    caption = (f"Table 1: per-block {choices['k']}-NN top-1 accuracy, {choices['folds']}-fold "
               f"recording-grouped CV on {result['n_species']} species x {result['n_clips_per_species']}"
               f" clips ({result['backbone']}); {choices['distance']} distance, "
               f"{choices['normalisation']} features; 95% interval from a recording bootstrap; "
               f"chance {result['chance']:.3f}. Selected blocks: {result['selected']}.")
    return caption + "\n\n" + "\n".join(lines) + "\n"


def agreement_sentence(rho: float, probe_order: list[int], weight_order: list[int]) -> str:
    if probe_order == weight_order:
        return (f"They agree: the learned weights order the blocks exactly as the probe does "
                f"({' > '.join(map(str, probe_order))}; Spearman rho = {rho:.2f}).")
    if probe_order[0] == weight_order[0]:
        return (f"They agree only on the top block ({probe_order[0]}): probe order "
                f"{' > '.join(map(str, probe_order))}, weight order {' > '.join(map(str, weight_order))} "
                f"(Spearman rho = {rho:.2f}).")
    return (f"They do not agree: probe order {' > '.join(map(str, probe_order))}, weight order "
            f"{' > '.join(map(str, weight_order))} (Spearman rho = {rho:.2f}).")


def probe_vs_weights(probe: dict[int, dict], blocks: list[int], mean_weights: list[float],
                     weight_name: str, reported: dict | None) -> tuple[str, float]:
    """The probe's accuracy and rank of each block the head read, beside the head's learned
    weight per block; returns (markdown, Spearman rho)."""
    from scipy.stats import spearmanr  # here, not at the top: half a second for every stage reading tables

    acc = [probe[b]["accuracy"] for b in blocks]
    rho = float(spearmanr(acc, mean_weights).statistic) if len(blocks) > 1 else float("nan")
    probe_order = [b for _, b in sorted(zip(acc, blocks), key=lambda t: (-t[0], t[1]))]
    weight_order = [b for _, b in sorted(zip(mean_weights, blocks), key=lambda t: (-t[0], t[1]))]
    lines = [f"Probe ranking of the selected blocks next to the learned {weight_name} "
             f"(5-fold mean), this run.", "",
             f"| Block | Probe accuracy | Probe rank (all blocks) | Learned {weight_name} |",
             "|---|---|---|---|"]
    for b, a, w in zip(blocks, acc, mean_weights):
        lines.append(f"| {b} | {a:.3f} | {probe[b]['rank']} | {w:.3f} |")
    lines += ["", agreement_sentence(rho, probe_order, weight_order)]
    if reported:
        rb = [int(b) for b in reported["blocks"]]
        rp = [float(by_block(reported["probe"], b)) for b in rb]
        rw = [float(by_block(reported["weights"], b)) for b in rb]
        rrho = float(spearmanr(rp, rw).statistic)
        lines += ["", "The paper (Perch v2, section 3.3), for comparison:", "",
                  "| Block | Probe accuracy (reported) | Learned scalar-mix weight (reported) |",
                  "|---|---|---|"]
        lines += [f"| {b} | {p:.3f} | {w:.3f} |" for b, p, w in zip(rb, rp, rw)]
        lines += ["", f"Reported Spearman rho = {rrho:.2f}."]
    return "\n".join(lines) + "\n", rho


def board_score(local: dict, board: str, digits: int) -> str:
    """A submission's local score on ``board`` ("public", "private" or "difference"): "undefined"
    when the board has no label with both positives and negatives (boards.score_boards)."""
    undefined = local.get("undefined") or {}
    if board in undefined or (board == "difference" and undefined):
        return "undefined"
    return fmt(local.get(board), digits)


def run_settings(manifest: dict | None) -> str:
    """What a submission ran with here, from its manifest (the paper's description may differ
    after `dvc exp run -S ...`); "-" when it has no manifest."""
    if manifest is None:
        return "-"
    text = f"{manifest['model']}, TTA x{len(manifest['tta'])}"
    post = manifest["postprocess"]
    if not manifest["entry"].get("postprocess"):  # `postprocess: false` runs with every knob off
        return text + ", raw"
    return text + f", prior {post['prior_alpha']:g}, sigma {post['sigma']:g}"


def table2(rows: list[str], local: dict, reported: dict, kaggle: dict, settings: dict[str, str],
           digits: int) -> str:
    """Table 2 as markdown: each row's local public/private next to the paper's public LB
    (and the Kaggle scores, when leaderboard/kaggle.yaml has any)."""
    head = ["Submission", "Description (paper)", "Run here", "Local public", "Local private",
            "Reported public LB"]
    if kaggle:
        head += ["Kaggle public", "Kaggle private"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in rows:
        rep, loc, kag = reported.get(name, {}), local.get(name, {}), kaggle.get(name, {})
        cells = [name, rep.get("description", ""), settings.get(name, "-"), board_score(loc, "public", digits),
                 board_score(loc, "private", digits), fmt(rep.get("public"), digits)]
        if kaggle:
            mark = " (other bytes)" if kag.get("matches") is False else ""
            cells += [fmt(kag.get("public"), digits) + mark, fmt(kag.get("private"), digits) + mark]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nLocal scores: macro ROC-AUC (competition metric) on the local hidden set's public and "
            "private files; reported: the paper's Table 2 (Kaggle public LB, Perch v2 features).\n")
    if any(k.get("matches") is False for k in kaggle.values()):
        note += ("(other bytes): leaderboard/kaggle.yaml records the sha256 of the file Kaggle scored, and it "
                 "is not the submission.csv this run wrote: that score belongs to other bytes.\n")
    return "Table 2: standalone sequence-head progression.\n\n" + "\n".join(lines) + "\n" + note


def interval(d: dict | None, digits: int = 4) -> str:
    """``+0.012 [+0.004, +0.020]`` from {difference, low, high}; "-" when absent."""
    if not d or d.get("difference") is None:
        return "-"
    if d.get("low") is None:
        return f"{d['difference']:+.{digits}f}"
    return f"{d['difference']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def board_table(title: str, rows: list[str], local: dict, reported: dict, compare: dict, reference: str,
                digits: int, confidence: float) -> str:
    """Tables 3 and 4: each row's local public / private and private minus public beside the
    paper's, and its difference to ``reference`` on each board with the paired bootstrap interval
    over that board's files (``compare``: boards.compare's result)."""
    head = ["Submission", "Description (paper)", "Local public", "Local private", "Private - public",
            "Reported public", "Reported private", "Reported private - public",
            f"Public - {reference} [{confidence:.0%} CI]", f"Private - {reference} [{confidence:.0%} CI]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in rows:
        rep, loc = reported.get(name, {}), local.get(name, {})
        rep_diff = (rep["private"] - rep["public"]) if "public" in rep and "private" in rep else None
        vs = ["-" if name == reference else
              "undefined" if compare.get(b, {}).get("undefined") else
              interval(compare.get(b, {}).get("vs", {}).get(name), digits) for b in ("public", "private")]
        cells = [name, rep.get("description", ""), board_score(loc, "public", digits),
                 board_score(loc, "private", digits), board_score(loc, "difference", digits),
                 fmt(rep.get("public"), digits), fmt(rep.get("private"), digits), fmt(rep_diff, digits)] + vs
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"\nLocal: macro ROC-AUC on the local hidden set's public and private files; reported: the paper's "
            f"Kaggle public and private LB. Differences to {reference}: paired bootstrap over the board's files "
            f"({confidence:.0%} percentile interval); an interval that excludes 0 is a difference this data can tell.\n")
    return f"{title}\n\n" + "\n".join(lines) + "\n" + note
