"""One GPU check: does `runtime.provider: cuda` give the CPU features within tolerance?

Runs on a machine with an NVIDIA GPU: builds the Perch-shaped fixture (no download), exposes its
blocks, runs the same 32 windows through the runner on the CPU and on CUDA, prints the max
absolute and relative difference per output and the throughput of each. Exits 0 with a plain
"not available" line when this onnxruntime has no CUDA provider.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("CUDA provider not available in this onnxruntime: check not run")
        return 0
    from tests.backbone_fixtures import probed_perch_tiny
    from birdclef_eos.backbone.runner import Backbone

    probed, spec, blocks = probed_perch_tiny()
    x = (0.1 * np.random.default_rng(0).standard_normal((32, 160_000))).astype(np.float32)
    out, speed = {}, {}
    for provider in ("cpu", "cuda"):
        run = Backbone(probed, spec, blocks, threads=2, batch_size=16, chunk_mapping="center", input_rate=32_000,
                       progress=False, provider=provider)
        run.features(x[:16])  # warm-up
        t = time.perf_counter()
        out[provider] = run.features(x).arrays()
        speed[provider] = len(x) / (time.perf_counter() - t)
    report = {k: {"max_abs": float(np.abs(out["cpu"][k] - out["cuda"][k]).max()),
                  "max_rel": float(np.abs(out["cpu"][k] - out["cuda"][k]).max() / (np.abs(out["cpu"][k]).max() + 1e-12))}
              for k in out["cpu"]}
    worst = max(r["max_rel"] for r in report.values())
    print(json.dumps({"windows_per_s": speed, "worst_relative_diff": worst,
                      "per_output": {k: report[k] for k in list(report)[:3] + ["embedding", "logits"]}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
