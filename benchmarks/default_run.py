"""The default `dvc repro`, timed per stage: the README's budget ledger.

Runs `dvc repro` (or `dvc repro --force` with --force) in the repository itself, streams its
output, stamps each "Running stage '<name>'" line and writes the seconds each stage took, the total,
and each stage's share of the 30-minute budget to benchmarks/results/default_run.json.

Usage: python benchmarks/default_run.py [--force]    (from the repository root, in .venv)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 30 * 60
README_STAGES = 6  # the README's timings block lists the slowest few; docs/benchmarks.md every stage
STAGE = re.compile(r"Running stage '([^']+)'")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--force", action="store_true", help="re-run every stage (dvc repro --force)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/default_run.json"),
                    help="where to write (a partial re-run: somewhere else, to keep the full run's record)")
    args = ap.parse_args(argv)
    cmd = ["dvc", "repro"] + (["--force"] if args.force else [])
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:
        sys.stdout.write(line)
        m = STAGE.search(line)
        if m:
            marks.append((m.group(1), time.perf_counter()))
    rc = proc.wait()
    end = time.perf_counter()
    if rc != 0:
        print(f"dvc repro failed (rc {rc}); nothing recorded", file=sys.stderr)
        return rc
    stages = {name: round((marks[i + 1][1] if i + 1 < len(marks) else end) - t, 1) for i, (name, t) in enumerate(marks)}
    total = round(end - started, 1)
    result = {"command": " ".join(cmd), "total_s": total, "budget_s": BUDGET_S, "ratio_to_budget": round(total / BUDGET_S, 3),
              "stages_s": stages, "stage_share_of_budget": {k: round(v / BUDGET_S, 4) for k, v in stages.items()},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "load_average_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if out.resolve() == (ROOT / "benchmarks/results/default_run.json").resolve():
        write_timings(result)
    print(f"default run: {total:.0f} s ({total / 60:.1f} min), {total / BUDGET_S:.2f} of the 30-minute budget -> {out}")
    return 0


def write_timings(result: dict) -> None:
    """The README's and docs/benchmarks.md's timings blocks, from the record just written."""
    sys.path.insert(0, str(ROOT))
    from birdclef_eos.report import readme
    readme.update_page(ROOT / "README.md", "timings", readme.timings_markdown(result, top=README_STAGES))
    readme.update_page(ROOT / "docs/benchmarks.md", "timings", readme.timings_markdown(result))


if __name__ == "__main__":
    raise SystemExit(main())
