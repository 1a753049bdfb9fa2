"""`dvc exp run -S postprocess.prior_alpha=0.4`: what a post-processing change re-runs and how long
it takes, against its limit.

Its budget: the raw predictions stay (predict@<name> reads only a submission's model and TTA); the
experiment re-runs `submit` (every submission's post-processing, arithmetic), the base chain's
post-processing (`base`), the blends and what reads the submissions, in at most 5% of the full
default run. Measured in a throwaway clone by benchmarks/experiment_cost.py (shared with
benchmarks/blend_experiment.py).

Usage: python benchmarks/postprocess_experiment.py [--alpha 0.4]   (after a complete `dvc repro`)
"""
from __future__ import annotations

import argparse

from experiment_cost import measure

LIMIT_SHARE = 0.05


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alpha", type=float, default=0.4)
    args = ap.parse_args(argv)
    measure(f"postprocess.prior_alpha={args.alpha}", LIMIT_SHARE, "postprocess_experiment")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
