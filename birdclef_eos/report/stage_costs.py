"""The README's stage-cost block, rendered from the cost benchmark's records.

benchmarks/costs.py runs every stage at three sizes, fits how each stage's time and peak memory grow
and extrapolates to the competition's size (benchmarks/results/costs.json; with ``--real-data``,
costs_real_data.json). It writes the full tables to docs/costs.md and docs/costs_real_data.md and
splices ``costs_markdown`` of both records between ``<!-- costs:start -->`` and ``<!-- costs:end -->``
of README.md, so no cost figure is typed by hand; tests/stages/test_generated_pages.py re-renders it
and fails when the README disagrees. A module of its own, not readme.py, because the paper stage
depends on readme.py and a cost re-run must not make it stale.
"""
from __future__ import annotations

from birdclef_eos.report import readme

LINEAR_FROM = 0.5   # a stage whose fitted time exponent is below this is a fixed cost at the measured sizes


def fmt_s(s: float | None) -> str:
    """Seconds in the unit a reader plans with: '-', '42 s', '3.5 min', '2.1 h'."""
    if s is None:
        return "-"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _peak(record: dict, backbone: str) -> tuple[str, float]:
    """The stage with the largest extrapolated peak memory (MB) for ``backbone`` ('birdnet' or 'perch_v2')."""
    peaks = {s: row[f"{backbone}_peak_mb"] for s, row in record["table"].items() if row.get(f"{backbone}_peak_mb")}
    stage = max(peaks, key=peaks.get)
    return stage, peaks[stage]


def _grew(record: dict) -> str:
    """The stages whose fitted time exponent is LINEAR_FROM or more, in words."""
    grew = [s for s, row in record["table"].items() if (row.get("time_fit") or {}).get("b", 0) >= LINEAR_FROM]
    return ", ".join(grew) or "no stage"


def _dominant(record: dict) -> str:
    return ", ".join(f"{s} {share:.0%}" for s, share in record["dominant"])


def costs_markdown(default: dict | None, real: dict | None) -> str:
    """Two sentences per record: the totals at the competition's size (power law to linear bound) for
    BirdNET V2.4 and Perch v2, the stages that dominate Perch v2's linear bound, the largest peak memory,
    and the sizes they were measured at. ``default``: costs.json; ``real``: costs_real_data.json."""
    lines = [readme.GENERATED.format(source="benchmarks/results/costs*.json", writer="benchmarks/costs.py"), ""]
    if default is None and real is None:
        return "\n".join(lines + ["No cost benchmark is recorded yet (`python benchmarks/costs.py`)."]) + "\n"
    parts = []
    for rec, page, what in ((default, "docs/costs.md", "the synthetic set with BirdNET V2.4"),
                            (real, "docs/costs_real_data.md",
                             "real-data mode (a small competition-layout folder, perch_tiny, BirdNET's second extraction)")):
        if rec is None:
            continue
        comp, tot = rec["competition"], rec["totals"]
        sizes = ", ".join(f"{r['n_windows']:,}" for r in rec["runs"])
        stage, mb = _peak(rec, "perch_v2")
        parts.append(
            f"Measured on {what} at {sizes} windows ({rec['date']}, load {rec['load_average_1min']}) and extrapolated "
            f"to the competition's {comp['n_windows']:,} windows ([{page}]({page})): BirdNET "
            f"{fmt_s(tot['birdnet_seconds'])} (power law) to {fmt_s(tot['birdnet_seconds_linear'])} (linear), "
            f"Perch v2 {fmt_s(tot['perch_v2_seconds'])} to {fmt_s(tot['perch_v2_seconds_linear'])} on {rec['machine']['cpus']} cores; "
            f"Perch v2's time goes to {_dominant(rec)}; the largest peak memory is {stage}'s, {mb / 1024:.1f} GB. "
            f"Only {_grew(rec)} grew with the data at these sizes; every other stage's figure is its fixed cost "
            "(start-up, notebook, DVC), so a training stage's full-size cost, which grows with its epochs and "
            "windows, is not extrapolated here.")
    if real is None:
        parts.append("Real-data mode (`benchmarks/costs.py --real-data`: perch_tiny on a small competition-layout "
                     "folder, BirdNET's second extraction measured) has no complete record yet.")
    return "\n".join(lines + [" ".join(parts)]) + "\n"
