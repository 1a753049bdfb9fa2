"""One GPU check: do the GPU routes (`runtime.provider: cuda`, onnxruntime-gpu; `torch-cuda`,
PyTorch) give the CPU features within tolerance, and how fast?

Runs on a machine with an NVIDIA GPU: builds the Perch-shaped fixture (no download), exposes its
blocks, runs the same 32 windows through the runner on the CPU (onnxruntime) and on every GPU
route this machine has, prints the max absolute and relative difference per output and the
throughput of each. A route that is not available is named and skipped; with none it exits 0
with a plain "not available" line. `--torch-cpu` adds the PyTorch route on the CPU (the only one
this was run with so far: no GPU machine was available; docs/scaling.md).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def routes(with_torch_cpu: bool) -> list[str]:
    import onnxruntime as ort
    import torch

    found = []
    if "CUDAExecutionProvider" in ort.get_available_providers():
        found.append("cuda")
    else:
        print("onnxruntime", ort.__version__, "has no CUDA provider: route cuda not run")
    if torch.cuda.is_available():
        found.append("torch-cuda")
    else:
        print("torch", torch.__version__, "sees no CUDA device: route torch-cuda not run")
    return found + (["torch-cpu"] if with_torch_cpu else [])


def main() -> int:
    todo = routes("--torch-cpu" in sys.argv)
    if not todo:
        print("no GPU route available: check not run")
        return 0
    from tests.fakes.backbone_fixtures import probed_perch_tiny
    from birdclef_eos.backbone.runner import Backbone

    probed, spec, blocks = probed_perch_tiny()
    x = (0.1 * np.random.default_rng(0).standard_normal((32, 160_000))).astype(np.float32)
    out, speed = {}, {}
    for provider in ["cpu"] + todo:
        run = Backbone(probed, spec, blocks, threads=2, batch_size=16, chunk_mapping="center", input_rate=32_000,
                       progress=False, provider=provider)
        run.features(x[:16])  # warm-up
        t = time.perf_counter()
        out[provider] = run.features(x).arrays()
        speed[provider] = len(x) / (time.perf_counter() - t)
    for provider in todo:
        report = {k: {"max_abs": float(np.abs(out["cpu"][k] - out[provider][k]).max()),
                      "max_rel": float(np.abs(out["cpu"][k] - out[provider][k]).max()
                                       / (np.abs(out["cpu"][k]).max() + 1e-12))} for k in out["cpu"]}
        worst = max(r["max_rel"] for r in report.values())
        print(json.dumps({"route": provider, "worst_relative_diff": worst,
                          "per_output": {k: report[k] for k in list(report)[:3] + ["embedding", "logits"]}},
                         indent=1))
    print(json.dumps({"windows_per_s": speed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
