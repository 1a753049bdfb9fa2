"""Generation time of the default synthetic set against the issue's limit (5 minutes on 2 cores).

Generates the `dataset.scale` set of params.yaml (default: `default`) into a temporary folder with
`dataset.jobs` workers, and reports wall time, CPU time, the machine's load, audio minutes and bytes.

Usage: python benchmarks/generation.py [--size default]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from birdclef_eos.data import synthetic  # noqa: E402
from stages.params import load_params  # noqa: E402
from birdclef_eos.data.config import DatasetParams  # noqa: E402

LIMIT_S = 300.0
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/generation.json"))
    args = ap.parse_args()
    p = load_params()["dataset"]
    if args.size:
        p["scale"] = args.size
    cfg = DatasetParams.model_validate(p).generator()
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), cpu_seconds()
        sizes = synthetic.generate(Path(tmp) / "birdclef", Path(tmp) / "hidden", int(p["seed"]), cfg, jobs=int(p["jobs"]))
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        files = [f for f in Path(tmp).rglob("*") if f.is_file()]
        audio_s = sum(sf.info(str(f)).duration for f in files if f.suffix == ".flac")
        nbytes = sum(f.stat().st_size for f in files)
    result = dict(size=p["scale"], jobs=int(p["jobs"]), cores=os.cpu_count(), wall_s=round(wall, 1),
                  cpu_s=round(cpu, 1), load_avg_1min=round(os.getloadavg()[0], 2), limit_s=LIMIT_S,
                  ratio_to_limit=round(wall / LIMIT_S, 3), audio_minutes=round(audio_s / 60, 1),
                  bytes=nbytes, **sizes)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"generation ({p['scale']}, {p['jobs']} jobs, {os.cpu_count()} cores): wall {wall:.1f} s, cpu {cpu:.1f} s, "
          f"load {os.getloadavg()[0]:.1f}; limit {LIMIT_S:.0f} s; ratio {wall / LIMIT_S:.3f}; "
          f"{audio_s / 60:.1f} min of audio, {nbytes / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
