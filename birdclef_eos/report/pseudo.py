"""The pseudo-labelling table: v6 against the pseudo students, with the paper's numbers
and sentences generated from the measured differences and their paired bootstrap intervals."""
from __future__ import annotations

from birdclef_eos.report.tables import interval  # one interval text for every table

COLUMNS = ("oof", "public", "private")


def fmt(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def verdict(c: dict | None) -> str:
    if not c or c.get("low") is None or c.get("high") is None:
        return "unmeasured"
    if c["low"] > 0:
        return "up"
    if c["high"] < 0:
        return "down"
    return "within noise"


def sentences(result: dict) -> list[str]:
    rows, out = result["rows"], []
    v4 = rows.get("v4")
    mode = (v4 or {}).get("mode", result["mode"])
    if v4:
        c = v4["vs_reference"].get("oof")
        out.append(f"OOF macro-AUC with the `{mode}` teacher: {fmt(v4['oof'])} against {fmt(result['reference']['oof'])} "
                   f"for v6's head ({interval(c)}): {verdict(c)}; the paper saw +0.1344 (0.7654 -> 0.8998).")
        undefined = result["reference"].get("undefined", {})
        moves = [f"{b} undefined ({undefined[b]})" if b in undefined else
                 f"{b} {verdict(v4['vs_reference'].get(b))} ({interval(v4['vs_reference'].get(b))})"
                 for b in ("public", "private") if b in v4["vs_reference"]]
        if moves:
            oof_up = verdict(c) == "up"
            boards_down = any(verdict(v4["vs_reference"].get(b)) == "down" for b in ("public", "private"))
            out.append("On the local boards, never seen by teacher or student: " + "; ".join(moves) + ". "
                       + ("The boards move against the OOF, as in the paper: the OOF gain is not a real one."
                          if oof_up and boards_down else
                          "The boards do not contradict the OOF here." if not oof_up or not boards_down else ""))
        honest = next(((n, r) for n, r in rows.items() if r.get("mode") == "fold" and n != "v4"), None)
        if mode == "ensemble" and honest:
            name, r = honest
            c2 = r["vs_reference"].get("oof")
            out.append(f"Four of the ensemble teacher's five models trained on the fold being scored; {name}, the same "
                       f"student taught by the fold teacher (fold k's labels come from the model that never saw fold k), "
                       f"scores OOF {fmt(r['oof'])} against v6 {interval(c2)}: {verdict(c2)}, against {fmt(v4['oof'])} "
                       f"with the ensemble teacher ({r['oof'] - v4['oof']:+.4f}).")
        elif mode == "ensemble":
            out.append("Four of the ensemble teacher's five models trained on the fold being scored; "
                       "`dvc exp run -S pseudo.mode=fold` retrains the students with fold-k labels only, "
                       "which tells whether that leak inflates the OOF.")
        else:
            out.append("The fold teacher never saw the scored fold: an OOF gain that survives it is not a leak.")
    res = rows.get("v4_residual")
    if res and v4:
        c = res["vs_reference"].get("oof")
        out.append(f"The residual student scores OOF {fmt(res['oof'])} against {fmt(v4['oof'])} for the attention "
                   f"student (paper: 0.8961 against 0.8998); against v6 {interval(c)}, "
                   + ("a null result here too." if abs(res["oof"] - v4["oof"]) < 0.01 else "not a null result here."))
    return out


def pseudo_markdown(result: dict, said: list[str], digits: int = 4) -> str:
    paper = result.get("paper", {})
    lines = [f"Pseudo-labelling (teacher `{result['teacher']}`; `pseudo.mode` {result['mode']}, a student may set its own): differences to v6 "
             f"with paired bootstrap {result['bootstrap']['confidence']:.0%} intervals over files "
             f"({result['bootstrap']['draws']} draws).", "",
             "| submission | model | teacher | OOF macro-AUC | local public | local private | OOF - v6 | public - v6 | "
             "private - v6 | paper OOF | paper public | paper private |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ref = result["reference"]
    undefined = ref.get("undefined", {})  # a board too small to score: its cells say so

    def board(row: dict, b: str) -> str:
        return "undefined" if b in undefined else fmt(row.get(b), digits)

    p = paper.get("v6", {})
    lines.append(f"| v6 | {ref['model']} | - | {fmt(ref['oof'], digits)} | {board(ref, 'public')} | "
                 f"{board(ref, 'private')} | - | - | - | {fmt(p.get('oof'), digits)} | "
                 f"{fmt(p.get('public'), 3)} | {fmt(p.get('private'), 3)} |")
    for name, row in result["rows"].items():
        p = paper.get(name, {})
        c = row["vs_reference"]
        vs = {b: "undefined" if b in undefined else interval(c.get(b), digits) for b in ("public", "private")}
        lines.append(f"| {name} | {row['model']} | {row.get('mode', result['mode'])} | {fmt(row['oof'], digits)} | "
                     f"{board(row, 'public')} | {board(row, 'private')} | {interval(c.get('oof'), digits)} | "
                     f"{vs['public']} | {vs['private']} | "
                     f"{fmt(p.get('oof'), digits)} | {fmt(p.get('public'), 3)} | {fmt(p.get('private'), 3)} |")
    skipped = result.get("pseudo_labels", {}).get("skipped")
    if skipped:
        lines += ["", f"No pseudo labels here: {skipped}. The students trained without a pseudo share (theirs "
                      "spread over the other sources), so these rows measure no pseudo-labelling."]
    return "\n".join(lines + [""] + [f"- {s}" for s in said]) + "\n"
