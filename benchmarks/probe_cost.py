"""Cost of the per-block probe against a plain forward pass of the backbone, same clips.

Draws the probe's clips (params.yaml `probe`, 30 x 20 = 600 by default) and, batch by batch on
warm ONNX sessions, times side by side (interleaved, alternating order, so that load on a shared
machine hits both alike):
  raw   - one forward pass through the original backbone (models/backbone.onnx: logits and
          embedding only) of audio already in memory;
  probe - what the probe stage does: reading the clips' audio, one pass through the probed graph
          (every block output), then the per-block kNN, bootstrap and linear probe.
Limit: probe <= 1.5 x raw. Writes benchmarks/results/probe_cost.json.

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

from tqdm import tqdm  # noqa: E402

from birdclef_eos.probe import knn
from stages import probe  # noqa: E402
from birdclef_eos.io.files import write_json  # noqa: E402
from birdclef_eos.backbone.runner import Backbone  # noqa: E402
from stages.params import load_params  # noqa: E402
from stages.paths import BACKBONE_JSON, BACKBONE_ONNX, BLOCKS_JSON, INDEX  # noqa: E402
from birdclef_eos.audio.windows import DATASET_SAMPLE_RATE, WINDOW_S  # noqa: E402
from birdclef_eos.audio.decode import load_window  # noqa: E402

LIMIT = 1.5
RESULT = Path("benchmarks/results/probe_cost.json")


def main() -> int:
    params = load_params()
    p, b = params["probe"], params["backbone"]
    recordings = pd.read_csv(INDEX / "recordings.csv", keep_default_na=False,
                             dtype={"recording_id": str, "primary_label": str, "path": str})
    clips = probe.draw_clips(recordings, p["species"], p["clips"], p["min_recordings"], p["seed"])
    blocks = probe.probed_blocks(json.loads(BLOCKS_JSON.read_text()), p["blocks"])
    names = [x["name"] for x in blocks]
    raw = Backbone(BACKBONE_ONNX, BACKBONE_JSON, BLOCKS_JSON, b["threads"], b["batch_size"],
                   b["chunk_mapping"], blocks=[], progress=False)
    probed = probe.open_backbone(params, params["runtime"]["provider"], [x["index"] for x in blocks])
    warm = np.zeros((b["batch_size"], int(WINDOW_S * DATASET_SAMPLE_RATE)), np.float32)
    raw.features(warm)
    probed.features(warm)

    seconds = {"read": 0.0, "probed": 0.0, "raw": 0.0}
    features = {n: [] for n in names}
    batch = 4 * b["batch_size"]
    for i, start in enumerate(tqdm(range(0, len(clips), batch), desc="batches")):
        rows = clips.iloc[start:start + batch]
        t = time.perf_counter()
        audio = np.stack([load_window(r.path, r.read_s, WINDOW_S, DATASET_SAMPLE_RATE)
                          for r in rows.itertuples()])
        seconds["read"] += time.perf_counter() - t
        for which in (("probed", "raw") if i % 2 == 0 else ("raw", "probed")):
            t = time.perf_counter()
            out = (probed if which == "probed" else raw).features(audio)
            seconds[which] += time.perf_counter() - t
            if which == "probed":
                for n in names:
                    features[n].append(out[n])
    t = time.perf_counter()
    scored = knn.score_blocks({n: np.concatenate(v) for n, v in features.items()},
                              clips["primary_label"].to_numpy(), clips["recording_id"].to_numpy(),
                              probe.knn_config(p))
    analysis_s = time.perf_counter() - t

    probe_s = seconds["read"] + seconds["probed"] + analysis_s
    ratio = probe_s / seconds["raw"]
    out = {"clips": len(clips), "blocks": len(blocks), "backbone": b["name"], "threads": b["threads"],
           "raw_forward_s": round(seconds["raw"], 2), "probe_total_s": round(probe_s, 2),
           "probe_read_s": round(seconds["read"], 2), "probe_forward_s": round(seconds["probed"], 2),
           "probe_analysis_s": round(analysis_s, 2),
           "raw_windows_per_s": round(len(clips) / seconds["raw"], 1), "ratio": round(ratio, 3),
           "limit": LIMIT, "within_limit": bool(ratio <= LIMIT),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
           "selected": knn.top_blocks(scored["blocks"], p["select"])}
    write_json(RESULT, out)
    print(f"probe over {len(clips)} clips x {len(blocks)} blocks: {probe_s:.1f} s (read "
          f"{seconds['read']:.1f} s, probed forward {seconds['probed']:.1f} s, kNN/bootstrap/linear "
          f"{analysis_s:.1f} s); raw forward {seconds['raw']:.1f} s ({len(clips) / seconds['raw']:.1f} "
          f"windows/s); ratio {ratio:.2f} (limit {LIMIT}) -> {'OK' if ratio <= LIMIT else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
