"""Cost of the per-block probe against a plain forward pass of the backbone, same clips.

Draws the probe's clips (params.yaml `probe`, 30 x 20 = 600 by default), then, side by side in
one process on warm ONNX sessions:
  raw   - the clips' audio already in memory, one forward pass through the original backbone
          (models/backbone.onnx, logits and embedding only);
  probe - the whole probe as the stage runs it: reading the clips, one pass through the probed
          graph (every block output), and the per-block kNN, bootstrap and linear probe.
Limit (issue 4): probe <= 1.5 x raw. Writes benchmarks/results/probe_cost.json.

Run: nice .venv/bin/python benchmarks/probe_cost.py   (needs data/index and the models/ files)
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.chdir(Path(__file__).resolve().parent.parent)

from stages import probe  # noqa: E402
from stages.atomic import write_json  # noqa: E402
from stages.backbone import Backbone  # noqa: E402
from stages.config import load_params  # noqa: E402
from stages.paths import BACKBONE_JSON, BACKBONE_ONNX, BLOCKS_JSON, INDEX  # noqa: E402
from stages.windows import DATASET_SAMPLE_RATE, WINDOW_S  # noqa: E402
from stages.audio import load_window  # noqa: E402

LIMIT = 1.5
RESULT = Path("benchmarks/results/probe_cost.json")


def main() -> int:
    params = load_params()
    p, b = params["probe"], params["backbone"]
    recordings = pd.read_csv(INDEX / "recordings.csv", keep_default_na=False,
                             dtype={"recording_id": str, "primary_label": str, "path": str})
    clips = probe.draw_clips(recordings, p["species"], p["clips"], p["min_recordings"], p["seed"])
    audio = np.stack([load_window(r.path, r.read_s, WINDOW_S, DATASET_SAMPLE_RATE)
                      for r in clips.itertuples()])

    raw = Backbone(BACKBONE_ONNX, BACKBONE_JSON, BLOCKS_JSON, b["threads"], b["batch_size"],
                   b["chunk_mapping"], blocks=[], progress=False)
    blocks = probe.probed_blocks(json.loads(BLOCKS_JSON.read_text()), p["blocks"])
    probed = probe.open_backbone(b, [x["index"] for x in blocks])
    raw.features(audio[: b["batch_size"]])  # warm both sessions
    probed.features(audio[: b["batch_size"]])

    started = time.perf_counter()
    raw.features(audio)
    raw_s = time.perf_counter() - started
    result, _, timings = probe.compute(params, runner=probed)

    ratio = timings["total_s"] / raw_s
    out = {"clips": len(clips), "blocks": len(blocks), "backbone": b["name"], "threads": b["threads"],
           "raw_forward_s": round(raw_s, 2), "probe_total_s": round(timings["total_s"], 2),
           "probe_forward_s": round(timings["forward_s"], 2),
           "probe_analysis_s": round(timings["analysis_s"], 2),
           "raw_windows_per_s": round(len(clips) / raw_s, 1), "ratio": round(ratio, 3),
           "limit": LIMIT, "within_limit": bool(ratio <= LIMIT),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "selected": result["selected"]}
    write_json(RESULT, out)
    print(f"probe over {len(clips)} clips x {len(blocks)} blocks: {timings['total_s']:.1f} s "
          f"(read + probed forward {timings['forward_s']:.1f} s, kNN/bootstrap/linear "
          f"{timings['analysis_s']:.1f} s); raw forward {raw_s:.1f} s "
          f"({len(clips) / raw_s:.1f} windows/s); ratio {ratio:.2f} (limit {LIMIT}) -> "
          f"{'OK' if ratio <= LIMIT else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
