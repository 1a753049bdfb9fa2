"""`dvc exp run -S blend.weight=0.08`: what it re-runs and how long it takes, against its limit.

Its budget: the experiment re-runs the blends and what reads them (leaderboard, tables, figures,
the paper with its published copies, the kernels), nothing upstream, in at most 2% of the full default run.
Measured in a throwaway clone by benchmarks/experiment_cost.py (shared with
benchmarks/postprocess_experiment.py).

Usage: python benchmarks/blend_experiment.py [--weight 0.08]   (after a complete `dvc repro`)
"""
from __future__ import annotations

import argparse

import sys

from experiment_cost import ROOT, measure

LIMIT_SHARE = 0.02


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weight", type=float, default=0.08)
    args = ap.parse_args(argv)
    result = measure(f"blend.weight={args.weight}", LIMIT_SHARE, "blend_experiment")
    print(result["metrics_diff"])
    sys.path.insert(0, str(ROOT))
    from birdclef_eos.report import readme  # the README's worked experiment is this record
    readme.update_page(ROOT / "README.md", "experiment", readme.experiment_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
