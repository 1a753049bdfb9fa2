"""Does a trained head's state dict depend on the thread count, the CPU instruction set or torch flags?

Trains the attention-pool head (stages/heads.py) with stages/training.train_fold on a small synthetic
set (the paper's block widths 232/384/384, params.yaml's optimiser settings: AdamW, cosine, mixup,
batch 32) once per setting, each in a fresh subprocess (the CPU-dispatch environment variables are
read when torch loads). For each setting it prints and records the sha256 of the kept state dict
(tensor bytes in key order), the largest absolute difference of its held-out probabilities from the
reference setting's, and the training seconds.

The reference setting is what the train stage does: torch.use_deterministic_algorithms(True) and
train.threads = 2 threads, on whatever the CPU dispatches to. Settings pin ATen's vectorised kernels
(ATEN_CPU_CAPABILITY), MKL's GEMM code path (MKL_CBWR, conditional numerical reproducibility) and
oneDNN's ISA (ONEDNN_MAX_CPU_ISA), change the thread count, or switch oneDNN / deterministic mode off.
Pinning a lower ISA on this CPU runs the code an older CPU would run by default, so "equal under the
pin" here is what makes two machines with different instruction sets agree.

    python benchmarks/train_determinism.py [--rows 3000] [--epochs 3] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = [232, 384, 384]
N_CLASSES = 234
DISPATCH_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                 "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# name -> (threads, environment, flags); flags: deterministic (default True), mkldnn (default True)
SETTINGS: dict[str, tuple[int, dict, dict]] = {
    "reference (2 threads, deterministic)": (2, {}, {}),
    "reference, again": (2, {}, {}),
    "1 thread": (1, {}, {}),
    "4 threads": (4, {}, {}),
    "use_deterministic_algorithms off": (2, {}, {"deterministic": False}),
    "mkldnn disabled": (2, {}, {"mkldnn": False}),
    "ATEN_CPU_CAPABILITY=avx512": (2, {"ATEN_CPU_CAPABILITY": "avx512"}, {}),
    "ATEN_CPU_CAPABILITY=avx2": (2, {"ATEN_CPU_CAPABILITY": "avx2"}, {}),
    "ATEN_CPU_CAPABILITY=default": (2, {"ATEN_CPU_CAPABILITY": "default"}, {}),
    "MKL_CBWR=AVX2": (2, {"MKL_CBWR": "AVX2"}, {}),
    "MKL_CBWR=COMPATIBLE": (2, {"MKL_CBWR": "COMPATIBLE"}, {}),
    "ONEDNN_MAX_CPU_ISA=AVX2": (2, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
    "pin avx2 (ATen+MKL+oneDNN)": (2, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                                       "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
    "pin avx2 (ATen+MKL+oneDNN), again": (2, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                                              "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
    "pin avx2, 1 thread": (1, {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
                               "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}),
    "pin default (ATen+MKL COMPATIBLE+oneDNN SSE41)": (2, {"ATEN_CPU_CAPABILITY": "default",
                                                          "MKL_CBWR": "COMPATIBLE",
                                                          "ONEDNN_MAX_CPU_ISA": "SSE41"}, {}),
}
REFERENCE = "reference (2 threads, deterministic)"


def synthetic(rows: int, seed: int = 0, noise: float = 3.0):
    """Class means plus noise, float32; numpy's generator gives the same bytes on any x86 CPU."""
    import numpy as np
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, size=rows)
    blocks = []
    for c in CHANNELS:
        means = rng.normal(size=(N_CLASSES, c)).astype(np.float32)
        blocks.append(means[labels] + noise * rng.standard_normal((rows, c), dtype=np.float32))
    y = np.zeros((rows, N_CLASSES), dtype=np.float32)
    y[np.arange(rows), labels] = 1.0
    return blocks, y


def state_sha256(state: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def worker(spec: dict) -> None:
    """Train once under the current process's environment; write result JSON + predictions."""
    import numpy as np
    import torch

    import yaml

    sys.path.insert(0, str(ROOT))
    try:
        from stages import heads, training
    except ImportError:  # after the move of the head code into the birdclef_eos package
        from birdclef_eos.heads import models as heads, training

    torch.use_deterministic_algorithms(spec["deterministic"])
    torch.backends.mkldnn.enabled = spec["mkldnn"]
    torch.set_num_threads(spec["threads"])
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]
    optim, mcfg = params["optim"], params["model"]
    blocks, y = synthetic(spec["rows"] + spec["val_rows"])
    data_sha = hashlib.sha256(b"".join(b.tobytes() for b in blocks) + y.tobytes()).hexdigest()
    tokens = [torch.from_numpy(b) for b in blocks]
    n = spec["rows"]
    tr, va = [t[:n] for t in tokens], [t[n:] for t in tokens]
    config = training.TrainConfig(epochs=spec["epochs"], patience=spec["epochs"], min_delta=optim["min_delta"],
                                  batch_size=optim["batch_size"], lr=optim["lr"],
                                  weight_decay=optim["weight_decay"], mixup_alpha=optim["mixup_alpha"])
    torch.manual_seed(0)
    model = heads.build_head({"type": "attn", "channels": CHANNELS, "n_classes": N_CLASSES,
                              **{k: mcfg[k] for k in ("d", "heads", "ffn", "dropout")}})
    started = time.perf_counter()
    best, history = training.train_fold(model, tr, torch.from_numpy(y[:n]), np.full(n, 1.0 / n),
                                        va, y[n:], config, seed=0, desc=spec["name"])
    seconds = time.perf_counter() - started
    probs = torch.sigmoid(training.predict_logits(best, va)).numpy()
    np.save(spec["pred_path"], probs)
    json.dump({"state_sha256": state_sha256(best.state_dict()), "data_sha256": data_sha,
               "train_s": round(seconds, 2), "epoch_s": round(seconds / len(history), 2),
               "best_epoch": history[-1]["best_epoch"],
               "val_macro_auc": round(history[history[-1]["best_epoch"]]["val_macro_auc"], 6),
               "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
              open(spec["result_path"], "w"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--val-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="setting names to run (the reference always runs)")
    parser.add_argument("--out", default="benchmarks/results/train_determinism.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    import numpy as np

    names = [n for n in SETTINGS if not args.only or n == REFERENCE or n in args.only]
    results, ref_probs = [], None
    base_env = {k: v for k, v in os.environ.items() if k not in DISPATCH_VARS}
    print(f"{'setting':<48} {'sha256[:16]':<17} {'same':<5} {'max |dp|':>10} {'train s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            threads, env, flags = SETTINGS[name]
            spec = {"name": name, "threads": threads, "rows": args.rows, "val_rows": args.val_rows,
                    "epochs": args.epochs, "deterministic": flags.get("deterministic", True),
                    "mkldnn": flags.get("mkldnn", True),
                    "pred_path": f"{tmp}/pred_{i}.npy", "result_path": f"{tmp}/result_{i}.json"}
            subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                           env={**base_env, "TQDM_DISABLE": "1", **env}, check=True, cwd=ROOT)
            record = json.load(open(spec["result_path"]))
            probs = np.load(spec["pred_path"])
            if name == REFERENCE:
                ref_probs, ref_sha = probs, record["state_sha256"]
            record.update({"setting": name, "threads": threads, "env": env, "flags": flags,
                           "same_as_reference": record["state_sha256"] == ref_sha,
                           "max_abs_diff_vs_reference": float(np.abs(probs - ref_probs).max())})
            results.append(record)
            print(f"{name:<48} {record['state_sha256'][:16]:<17} {str(record['same_as_reference']):<5} "
                  f"{record['max_abs_diff_vs_reference']:>10.2e} {record['train_s']:>8.2f}", flush=True)
    import torch
    out = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                       "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "load_1min": os.getloadavg()[0]},
           "rows": args.rows, "val_rows": args.val_rows, "epochs": args.epochs,
           "channels": CHANNELS, "n_classes": N_CLASSES, "reference": REFERENCE, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
