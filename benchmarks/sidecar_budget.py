"""Wall time of the `sidecar` stage (train + its 3-shift test predictions) against its budget (
the sidecar trains in under 30 s on 2 cores, plus its extraction in real-data mode).

Runs `stages.sidecar.run` in a scratch folder that links the repository's data/features,
data/sidecar_features, data/index and data/hidden (nothing of the pipeline's outputs is touched), once
with params.yaml's `sidecar.head` (`current`) and, with --baseline, once with the heads' own model and
optimiser (`train.model`, `train.optim`: the configuration of train@abl_embedding, the same head on the
same embedding, which the sidecar used before it had knobs of its own). Writes
benchmarks/results/sidecar_budget.json: seconds, the training share, OOF macro-AUC, epochs per fold,
parameters and the machine's load average before and after each run (a loaded machine is slower: say so
when reporting). The stage adds the notebook's start-up (about 5 s) to these seconds.

    python benchmarks/sidecar_budget.py [--baseline] [--repeat N]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stages import sidecar  # noqa: E402
from stages.params import stage_params  # noqa: E402
from stages.schema import load_params  # noqa: E402

BUDGET_S = 30.0
LINKED = ("data/features", "data/sidecar_features", "data/index", "data/hidden")


def configs(baseline: bool) -> dict[str, dict]:
    params = stage_params("sidecar", None, ROOT / "params.yaml")
    out = {"current": params}
    if baseline:
        train = load_params(ROOT / "params.yaml")["train"]
        old = copy.deepcopy(params)
        old["sidecar"]["head"]["model"] = dict(train["model"])
        old["sidecar"]["head"]["optim"] = {k: v for k, v in train["optim"].items() if k != "mix_lr_scale"}
        out["abl_embedding_config"] = old
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", action="store_true", help="also time train@abl_embedding's configuration")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores visible", "budget_s": BUDGET_S, "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        for name in LINKED:
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).symlink_to(ROOT / name)
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            for _ in range(args.repeat):
                for label, params in configs(args.baseline).items():
                    load = os.getloadavg()[0]
                    cpu, started = time.process_time(), time.perf_counter()
                    result = sidecar.run(params)
                    seconds = time.perf_counter() - started
                    m = result.metrics
                    record = {"config": label, "seconds": round(seconds, 1), "within_budget": seconds < BUDGET_S,
                              "train_s": m["train_s"], "predict_s": m["predict_s"],
                              "cpu_s": round(time.process_time() - cpu, 1), "oof_macro_auc": m["oof_macro_auc"],
                              "focal_top1": m["focal_top1"], "n_params": m["n_params"],
                              "epochs_run_best": [[f["epochs_run"], f["best_epoch"]] for f in m["folds"]],
                              "model": params["sidecar"]["head"]["model"], "optim": params["sidecar"]["head"]["optim"],
                              "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
                    out["runs"].append(record)
                    print(json.dumps(record), flush=True)
        finally:
            os.chdir(cwd)
    path = ROOT / "benchmarks/results/sidecar_budget.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
