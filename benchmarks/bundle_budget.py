"""CPU budget of a Kaggle kernel bundle, run as Kaggle runs it.

Runs the generated notebook bundles/kernels/<bundle>/*.ipynb with papermill, offline, on a
competition-layout folder whose test_soundscapes/ holds the first N hidden test files of the default
set (data/hidden/test_soundscapes), twice: with 1 file (set-up) and with N files. The per-file time
(the difference of the submission cell's printed seconds over N - 1 files) is extrapolated to the
real hidden test set (about 700 one-minute files) plus the set-up, and set against Kaggle's
90-minute CPU limit. The set-up is the whole 1-file run's wall time (papermill's kernel start, the
imports, checking and linking the model folder, the offline wheel install) less one file: what the
kernel spends before and besides its files. Also checks the N-file submission against
submissions/<submission>/submission.csv (max abs difference; 1e-6 is the test's tolerance). A chain
or blend bundle (eos7) ranks every class over ALL test rows, so its submission equals the pipeline's
only on the whole hidden set: run it with --files 0 (every hidden file); on fewer files the check
is skipped (null). A bundle whose chain weighs the SED (eos9) also computes the SED's log-mels
from the test audio, which is part of its per-file time.

Usage: python benchmarks/bundle_budget.py [--bundle v6] [--files 8]   (after dvc repro bundle)
       python benchmarks/bundle_budget.py --bundle eos7 --files 0   (likewise eos9, eos10)
       python benchmarks/bundle_budget.py --pages                   (only re-render the pages)
Writes benchmarks/results/bundle_budget.json (v6) or bundle_budget_<bundle>.json, then re-renders
the budget blocks of README.md and docs/kaggle.md from every such file
(birdclef_eos/report/kaggle_budget.py; tests/stages/test_generated_pages.py
checks they agree).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MIN, HIDDEN_FILES = 90.0, 700


def run_kernel(notebook: Path, model_dir: Path, files: list[Path], work: Path) -> tuple[float, float, Path]:
    """(seconds the notebook reports for the submission, papermill wall seconds, submission.csv)."""
    test_dir = work / "birdclef-2026" / "test_soundscapes"
    test_dir.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, test_dir / f.name)
    out = work / "working"
    out.mkdir()
    env = dict(os.environ, EOS_MODEL_DIR=str(model_dir), EOS_TEST_DIR=str(test_dir), EOS_OUT_DIR=str(out))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(work / "executed.ipynb"), "--cwd", str(work)],
                   env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    printed = re.search(r"rows x \d+ labels in ([\d.]+) s", (work / "executed.ipynb").read_text())
    return float(printed.group(1)), wall, out / "submission.csv"


def records() -> list[dict]:
    """Every committed bundle budget record, v6's first, then by name with numbers in order (eos7 before eos10)."""
    def key(f: Path):
        return f.name != "bundle_budget.json", [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)]
    files = sorted((ROOT / "benchmarks/results").glob("bundle_budget*.json"), key=key)
    return [json.loads(f.read_text()) for f in files]


def write_pages() -> None:
    """The README's and docs/kaggle.md's budget blocks, from the records."""
    sys.path.insert(0, str(ROOT))
    from birdclef_eos.report import kaggle_budget, readme
    rows = records()
    readme.update_page(ROOT / "README.md", "kaggle_budget", kaggle_budget.bundle_budget_markdown(rows, short=True))
    readme.update_page(ROOT / "docs/kaggle.md", "kaggle_budget", kaggle_budget.bundle_budget_markdown(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="v6")
    ap.add_argument("--files", type=int, default=8, help="hidden test files timed (0: all of them)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--pages", action="store_true", help="only re-render the README and docs/kaggle.md blocks")
    args = ap.parse_args()
    if args.pages:
        write_pages()
        return
    out = args.out or str(ROOT / "benchmarks/results" / ("bundle_budget.json" if args.bundle == "v6"
                                                          else f"bundle_budget_{args.bundle}.json"))
    kernel_dir = ROOT / "bundles/kernels" / args.bundle
    notebook = next(kernel_dir.glob("*.ipynb"))
    manifest = json.loads((ROOT / "bundles/models/manifest.json").read_text())
    submission = manifest["bundles"][args.bundle]["submission"]
    every = sorted((ROOT / "data/hidden/test_soundscapes").iterdir())
    hidden = every[: args.files] if args.files > 0 else every
    comparable = len(hidden) == len(every) or manifest["bundles"][args.bundle]["kind"] == "predict"
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        t1, wall1, _ = run_kernel(notebook, ROOT / "bundles/models", hidden[:1], Path(one))
        tn, walln, csv = run_kernel(notebook, ROOT / "bundles/models", hidden, Path(many))
        mine = pd.read_csv(csv, dtype={"row_id": str}).set_index("row_id")
        want = pd.read_csv(ROOT / "submissions" / submission / "submission.csv", dtype={"row_id": str}).set_index("row_id")
        diff = float(np.abs(mine.to_numpy() - want.loc[mine.index, mine.columns].to_numpy()).max()) if comparable else None
    per_file = (tn - t1) / max(len(hidden) - 1, 1)
    setup = max(wall1 - per_file, 0.0)
    minutes = (setup + per_file * HIDDEN_FILES) / 60
    result = {"bundle": args.bundle, "submission": submission, "files_timed": len(hidden), "hidden_set_files": len(every),
              "seconds_1_file": round(t1, 2), f"seconds_{len(hidden)}_files": round(tn, 2),
              "papermill_wall_s": [round(wall1, 1), round(walln, 1)],
              "per_file_s": round(per_file, 3), "setup_s": round(setup, 2), "hidden_files": HIDDEN_FILES,
              "extrapolated_min": round(minutes, 2), "limit_min": LIMIT_MIN, "ratio_to_limit": round(minutes / LIMIT_MIN, 4),
              "max_abs_diff_to_submission": diff, "rows": len(mine),
              "load_average_1min": load + [round(os.getloadavg()[0], 2)], "kind": manifest["bundles"][args.bundle]["kind"],
              "model": manifest["bundles"][args.bundle]["model"], "date": time.strftime("%Y-%m-%d"),
              "manifest_sha256": hashlib.sha256((ROOT / "bundles/models/manifest.json").read_bytes()).hexdigest(),
              "setup_is": "the 1-file run's papermill wall time less one file (kernel start, imports, folder check, wheel install)",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}}
    tmp = Path(out).with_suffix(".json.tmp")  # atomic: a half-written record never reaches the pages
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    print(json.dumps(result, indent=2, sort_keys=True))
    write_pages()


if __name__ == "__main__":
    main()
