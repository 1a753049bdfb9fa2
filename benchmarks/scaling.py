"""Extraction scaling: the in-process pass against 1 and 2 local Dask workers, windows/s and efficiency.

The same plan (every 5-s chunk of seeded one-minute FLAC files) through `forward` in-process and
through `forward_on_cluster` (birdclef_eos/audio/cluster.py) on an embedded local cluster of 1 and
2 worker processes; every worker holds one runner with `--threads` threads. Start-up (cluster and
client) is timed apart from the pass; the pass includes each worker opening its runner, as a stage
run does (and so does the in-process pass). Efficiency = throughput / (workers x in-process throughput). Each configuration is also
checked to give the in-process bytes. Backbone: BirdNET V2.4 (the default backbone, converted once
and cached), or perch_tiny when that is absent.

Usage: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/scaling.py [--files 24] [--threads 1] [--task-windows 64]
Result: benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from runner_throughput import CHUNK_S, FILE_S, RATE, prepare, write_audio  # noqa: E402
from birdclef_eos.audio.cluster import forward_on_cluster  # noqa: E402
from birdclef_eos.io.cluster import open_client  # noqa: E402
from birdclef_eos.audio.shards import ShardStore  # noqa: E402
from birdclef_eos.audio.windows import forward  # noqa: E402
from birdclef_eos.backbone.runner import Backbone  # noqa: E402
from stages.params import load_params  # noqa: E402
from stages.paths import BENCHMARK_RESULTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="birdnet_v24", choices=["birdnet_v24", "perch_tiny"])
    parser.add_argument("--files", type=int, default=24, help="one-minute audio files (12 windows each)")
    parser.add_argument("--threads", type=int, default=1, help="runner threads, in-process and per worker")
    parser.add_argument("--task-windows", type=int, default=64, help="windows per task, at least extract.batch_windows (the stage: 512)")
    args = parser.parse_args()
    params = load_params()
    backbone, runtime = params["backbone"], params["runtime"]
    batch_windows = int(params["extract"]["batch_windows"])
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="scaling_") as tmp:
        folder = Path(tmp)
        _, probed, spec_path, blocks_path, spec = prepare(args.backbone, backbone, folder,
                                                          Path(runtime["cache_dir"]).expanduser())
        paths = write_audio(folder, args.files)
        plan = pd.DataFrame([{"path": str(p), "read_s": float(s)} for p in paths
                             for s in range(0, FILE_S - CHUNK_S + 1, CHUNK_S)])
        open_runner = functools.partial(Backbone, probed, spec_path, blocks_path, threads=args.threads,
                                        batch_size=int(backbone["batch_size"]),
                                        chunk_mapping=backbone["chunk_mapping"], input_rate=RATE,
                                        progress=False, frontend=backbone["frontend"])
        names = ["embedding", "logits"]
        rows = {}
        t = time.perf_counter()
        _, ref, _ = forward(open_runner(), plan, names, batch_windows, "error", RATE)  # opening included, as on a worker
        seconds = time.perf_counter() - t
        rows["in-process"] = {"workers": 1, "start_s": 0.0, "pass_s": round(seconds, 2)}
        print(f"in-process: {len(plan) / seconds:.1f} windows/s", file=sys.stderr)
        for workers in (1, 2):
            t = time.perf_counter()
            with open_client(None, workers) if workers > 1 else _one_worker() as client:
                started = time.perf_counter() - t
                t = time.perf_counter()
                _, got, _ = forward_on_cluster(client, open_runner, plan, names, batch_windows, "error", RATE,
                                               token=f"scaling-{workers}",
                                               shards=ShardStore(folder / f"shards_{workers}", args.task_windows))
                seconds = time.perf_counter() - t
            same = all(ref[n].tobytes() == got[n].tobytes() for n in names)
            rows[f"{workers} worker{'s' if workers > 1 else ''}"] = {
                "workers": workers, "start_s": round(started, 2), "pass_s": round(seconds, 2), "same_bytes": same}
            print(f"{workers} worker(s): {len(plan) / seconds:.1f} windows/s (start-up {started:.1f} s), "
                  f"same bytes: {same}", file=sys.stderr)

    base = len(plan) / rows["in-process"]["pass_s"]
    for row in rows.values():
        row["windows_per_s"] = round(len(plan) / row["pass_s"], 2)
        row["efficiency"] = round(row["windows_per_s"] / (row["workers"] * base), 3)
    result = {"backbone": spec["name"], "windows": len(plan), "threads_per_runner": args.threads,
              "batch_size": int(backbone["batch_size"]), "batch_windows": batch_windows,
              "task_windows": args.task_windows, "runs": rows,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other sessions",
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    (ROOT / BENCHMARK_RESULTS).mkdir(parents=True, exist_ok=True)
    (ROOT / BENCHMARK_RESULTS / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))
    return 0


class _one_worker:
    """A local cluster of exactly one worker process (open_client runs 1 worker in-process)."""

    def __enter__(self):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()
        return False


if __name__ == "__main__":
    sys.exit(main())
