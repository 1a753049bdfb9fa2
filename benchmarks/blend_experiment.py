"""`dvc exp run -S blend.weight=0.08`: what it re-runs and how long it takes, against its limit.

Its budget: the experiment re-runs the blends and what reads them (leaderboard, tables,
figures, publish, paper), nothing upstream, in under 30 s on the default set, about 2% of the full
default run. Measured in a throwaway clone (git clone of HEAD, the repository's DVC cache, `dvc
checkout`), so the repository's own workspace and experiments are untouched. The full run's time
is read from benchmarks/results/default_run.json (benchmarks/default_run.py, same machine).

Usage: python benchmarks/blend_experiment.py [--weight 0.08]   (after a complete `dvc repro`)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 30.0
STAGE = re.compile(r"Running stage '([^']+)'")
RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")  # DVC's run-cache: no work was timed


def sh(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weight", type=float, default=0.08)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        sh(["git", "clone", "-q", str(ROOT), str(clone)], ROOT)
        (clone / ".venv").symlink_to(ROOT / ".venv")
        sh(["dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache")], clone)
        sh(["dvc", "config", "--local", "cache.type", "hardlink"], clone)
        sh(["dvc", "checkout", "-q"], clone)
        started = time.perf_counter()
        out = sh(["dvc", "exp", "run", "-S", f"blend.weight={args.weight}"], clone)
        seconds = time.perf_counter() - started
        diff = sh(["dvc", "metrics", "diff", "--md"], clone)
    ran, restored = STAGE.findall(out), RESTORED.findall(out)
    full = json.loads((ROOT / "benchmarks/results/default_run.json").read_text()) \
        if (ROOT / "benchmarks/results/default_run.json").exists() else None
    result = {"command": f"dvc exp run -S blend.weight={args.weight}", "seconds": round(seconds, 1), "limit_s": LIMIT_S,
              "ratio_to_limit": round(seconds / LIMIT_S, 3), "stages_run": ran,
              "restored_from_run_cache": restored,  # non-empty: this weight ran before; pass a new --weight
              "full_run_s": full["total_s"] if full else None,
              "share_of_full_run": round(seconds / full["total_s"], 4) if full else None,
              "metrics_diff": diff, "load_average_1min": round(os.getloadavg()[0], 2),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d")}
    path = ROOT / "benchmarks/results/blend_experiment.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(diff)
    print(f"{result['command']}: {seconds:.1f} s ({seconds / LIMIT_S:.2f} of the {LIMIT_S:.0f}-s limit"
          + (f", {result['share_of_full_run']:.1%} of the full run" if full else "") + f"); stages: {', '.join(ran)}"
          + (f"; restored from the run-cache (not timed work): {', '.join(restored)}" if restored else "") + f" -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
