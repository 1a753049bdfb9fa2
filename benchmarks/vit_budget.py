"""Wall time of each spectrogram-ViT size against its budget (under 90 s each on 2 cores).

Runs `stages.vit.run` with the params.yaml settings for every `vit.sizes` key, in a scratch folder that
links the repository's data/spectrograms, data/index and data/hidden (so nothing of the pipeline's
outputs is touched), and writes benchmarks/results/vit_budget.json: seconds per size, training
samples/s, OOF macro-AUC and the machine's load average before and after (a loaded machine is slower:
say so when reporting).

    python benchmarks/vit_budget.py [--sizes 196 224]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stages import vit  # noqa: E402
from stages.params import stage_params  # noqa: E402
from stages.schema import load_params  # noqa: E402

BUDGET_S = 90.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=None)
    args = ap.parse_args(argv)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores visible", "budget_s": BUDGET_S, "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("data/spectrograms", "data/index", "data/hidden"):
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).symlink_to(ROOT / name)
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            for key in args.sizes or list(load_params(ROOT / "params.yaml")["vit"]["sizes"]):
                params = stage_params("vit", key, ROOT / "params.yaml")
                load = os.getloadavg()[0]
                started = time.perf_counter()
                result = vit.run(params, key)
                seconds = time.perf_counter() - started
                o = params["vit"]["optim"]
                samples = o["samples_per_epoch"] * sum(f["epochs_run"] for f in result.metrics["folds"])
                out["sizes"][key] = {"seconds": round(seconds, 1), "within_budget": seconds < BUDGET_S,
                                     "training_samples": samples, "samples_per_s_overall": round(samples / seconds, 1),
                                     "oof_macro_auc": result.metrics["oof_macro_auc"],
                                     "pos_embed_shape": result.metrics["pos_embed_shape"],
                                     "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
                print(key, out["sizes"][key], flush=True)
        finally:
            os.chdir(cwd)
    path = ROOT / "benchmarks/results/vit_budget.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
