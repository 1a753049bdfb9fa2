"""The Kaggle kernels' CPU budget block of README.md and docs/kaggle.md, rendered from the records.

benchmarks/bundle_budget.py times each bundle's kernel and writes benchmarks/results/bundle_budget*.json;
it then splices ``bundle_budget_markdown`` of every record between ``<!-- kaggle_budget:start -->`` and
``<!-- kaggle_budget:end -->`` of both pages (``readme.update_page``), so no budget figure is typed by
hand; tests/stages/test_generated_pages.py re-renders them and fails when a page disagrees. A module of
its own, not readme.py, because the paper stage depends on readme.py and a budget re-run must not make
it stale.
"""
from __future__ import annotations

from birdclef_eos.report import readme
def bundle_budget_markdown(records: list[dict], short: bool = False) -> str:
    """The Kaggle kernels' CPU budget (benchmarks/results/bundle_budget*.json): per bundle, the seconds per
    hidden file and of set-up measured here, extrapolated to the ``hidden_files`` of Kaggle's hidden set
    and set against its ``limit_min``; and whether the timed run equalled the pipeline's submission.
    ``short``: the README's lines; else the table docs/kaggle.md shows."""
    source = "benchmarks/results/bundle_budget*.json"
    lines = [readme.GENERATED.format(source=source, writer="benchmarks/bundle_budget.py"), ""]
    if not records:
        return "\n".join(lines + ["No bundle budget is recorded yet (`python benchmarks/bundle_budget.py`)."]) + "\n"

    def same(r):
        d = r.get("max_abs_diff_to_submission")
        return "not compared (fewer files than the set)" if d is None else ("equal" if d == 0 else f"max abs diff {d:.2g}")

    if short:
        parts = [f"{r['bundle']} {r['extrapolated_min']:.1f} min ({100 * r['ratio_to_limit']:.0f}%)" for r in records]
        first = records[0]
        loads = [x for r in records for x in r.get("load_average_1min", [])]
        load = f"1-min load {min(loads):.1f} to {max(loads):.1f}" if loads else "load not recorded"
        return "\n".join(lines + [
            f"Each kernel's run time on {first['hidden_files']} hidden files against Kaggle's "
            f"{first['limit_min']:.0f}-minute limit, extrapolated from papermill runs on this shared "
            f"{first.get('machine', {}).get('cpus', '?')}-core machine (wall clock at {load}; "
            "[docs/kaggle.md](docs/kaggle.md#6-cpu-budget-kaggle-90-minutes)): "
            + ", ".join(parts) + "."]) + "\n"
    rows = []
    for r in records:
        timed = r["files_timed"]
        load = "/".join(f"{x:.1f}" for x in r.get("load_average_1min", []))
        models = "+".join(dict.fromkeys(str(r.get("model", r["submission"])).split("+")))  # each model once
        rows.append([r["bundle"], f"{r.get('kind', '?')}: {models}",
                     f"{timed} of {r.get('hidden_set_files', timed)}", f"{r['per_file_s']:.2f} s", f"{r['setup_s']:.1f} s",
                     f"{r['extrapolated_min']:.1f} min", f"{r['ratio_to_limit']:.2f}", same(r), load or "-",
                     r.get("date", "-")])
    lines += readme._table(["bundle", "kind: models", "files timed", "per file", "set-up",
                     f"{records[0]['hidden_files']} files", f"share of {records[0]['limit_min']:.0f} min",
                     "timed submission vs the pipeline's", "1-min load", "measured"], rows)
    return "\n".join(lines) + "\n"
