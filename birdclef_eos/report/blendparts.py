"""Table 3's second half: the blend against each of its parts, and each part's effective share.

Apart from tables.py on purpose: that module is read by the probe and the heads' training stages
(Table 1, the probe-versus-weights table), so a line added there would re-run them for a table
they never write.
"""
from __future__ import annotations

from birdclef_eos.report.tables import interval


def blend_parts_markdown(blend: str, against: dict, shares: dict, space: str, digits: int, confidence: float) -> str:
    """Table 3's second half: ``blend`` against each of its parts on both boards (``against``: id ->
    {label, board: {difference, low, high}}, paired bootstrap over the board's files) and, a line per blend,
    each part's nominal weight beside its effective share (``shares``: blend -> {part: {weight,
    effective}}): a part's share of the per-column spread of the weighted parts, median over columns.
    Parts on different scales (a rank-valued base, a probability head) mixed in ``space`` do not
    carry their nominal weights; this says how far they do not."""
    lines = []
    if against:
        lines += [f"{blend} against its parts ({blend} minus the row; paired bootstrap over each board's files, "
                  f"{confidence:.0%} interval):", "",
                  f"| Against | Public [{confidence:.0%} CI] | Private [{confidence:.0%} CI] |", "|---|---|---|"]
        lines += [f"| {d.get('label', key)} | {interval(d.get('public'), digits)} | "
                  f"{interval(d.get('private'), digits)} |" for key, d in against.items()]
        lines.append("")
    if shares:
        lines += [f"Each part's effective share of its blend (share of the per-column spread of the weighted parts, "
                  f"median over columns; mixed in `{space}` space unless the entry says otherwise) against its nominal "
                  f"weight:", ""]
        for name, parts in shares.items():
            said = ", ".join(f"{p} {100 * s['effective']:.1f}% (nominal {100 * s['weight']:.1f}%)"
                             for p, s in parts.items())
            lines.append(f"- {name}: {said}")
        lines.append("")
    return "\n".join(lines)
