"""Extraction speed against BirdNET's own runtime: our runner vs the TFLite/XNNPACK interpreter.

Same BirdNET V2.4 FP32 model, same windows, one run, rounds interleaved (median reported):
- tflite: ai-edge-litert's interpreter (XNNPACK, `--threads`), logits only, batch 1, 16 and `--batch`
  (ours/TFLite uses the best of them);
- raw onnxruntime: the converted, probed ONNX fed ready-made 3-s model inputs (in-graph DFT);
- runner (graph): `Backbone.features` on 5-s 32 kHz chunks -> pooled block features, in-graph DFT
  (the runner as it was);
- runner (dft): the same with `frontend="dft"`: the DFT computed by numpy in the preparation thread
  (birdclef_eos/backbone/frontend.py).
Prints windows/s of each and ours/TFLite (aim >= 1.2), the logit differences to TFLite on the fixed
test signals, and how far the dft runner's features are from the graph runner's; writes
benchmarks/results/extract_vs_tflite.json. `--explore` also times the variants recorded in
benchmarks/results/extract_speed.md (batch sizes, no spinning, float32 FFT, two 1-thread runners).

Usage: python benchmarks/extract_vs_tflite.py [--windows 64] [--rounds 5] [--threads 2] [--batch 4]
       [--convert-python .venv-convert/bin/python] [--cache DIR] [--explore]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from birdclef_eos.backbone import birdnet  # noqa: E402
from birdclef_eos.backbone.runner import Backbone  # noqa: E402
from birdclef_eos.backbone.surgery import expose_blocks  # noqa: E402
from stages.params import load_params  # noqa: E402
from birdclef_eos.backbone.frontend import make_session  # noqa: E402
from stages.paths import BENCHMARK_RESULTS  # noqa: E402

AIM = 1.2
RATE, CHUNK = 32_000, 160_000


def prepare(bn: dict, cache: Path, folder: Path) -> tuple[Path, Path, Path, Path]:
    """(tflite, probed onnx, backbone.json, blocks.json); the conversion is cached in ``cache``."""
    got = birdnet.prepare(bn, cache)
    spec = {"name": "birdnet_v24", "input_name": birdnet.INPUT_NAME, "sample_rate": birdnet.SAMPLE_RATE,
            "window_samples": birdnet.WINDOW_SAMPLES, "normalisation": "none",
            "logits_output": birdnet.LOGITS_OUTPUT, "embedding_output": birdnet.EMBEDDING_OUTPUT}
    probed, inventory = expose_blocks(onnx.load(str(got["onnx"])), spec["window_samples"], spec["embedding_output"])
    inventory.update(logits_output=spec["logits_output"], embedding_output=spec["embedding_output"])
    paths = folder / "probed.onnx", folder / "backbone.json", folder / "blocks.json"
    onnx.save(probed, str(paths[0]))
    paths[1].write_text(json.dumps(spec))
    paths[2].write_text(json.dumps(inventory))
    return (got["tflite"], *paths)


def audio_chunks(n: int) -> np.ndarray:
    """[n, 160000] 5-s chunks at 32 kHz: noise plus chirping calls (seeded)."""
    rng = np.random.default_rng(0)
    t = np.arange(CHUNK) / RATE
    x = 0.05 * rng.standard_normal((n, CHUNK))
    for row in x:
        for start in rng.uniform(0, 4.5, 3):
            on = (t >= start) & (t < start + 0.5)
            row[on] += 0.3 * np.sin(2 * np.pi * (rng.uniform(1500, 6000) * (t[on] - start) + 2000 * (t[on] - start) ** 2))
    return x.astype(np.float32)


class Tflite:
    def __init__(self, path: Path, threads: int, batch: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        inp = self.interpreter.get_input_details()[0]
        self.interpreter.resize_tensor_input(inp["index"], [batch, inp["shape"][1]])
        self.interpreter.allocate_tensors()
        self.inp, self.out = inp["index"], self.interpreter.get_output_details()[0]["index"]
        self.batch = batch

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch):
            part = x[i:i + self.batch]
            if len(part) < self.batch:  # the interpreter is sized for full batches
                part = np.concatenate([part, np.zeros((self.batch - len(part), x.shape[1]), x.dtype)])
            self.interpreter.set_tensor(self.inp, part)
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.out)[:len(x) - i].copy())
        return np.concatenate(out)


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def two_runners(runners: list[Backbone], chunks: np.ndarray) -> None:
    """Half the chunks each, in parallel threads."""
    half = len(chunks) // 2
    threads = [threading.Thread(target=r.features, args=(part,)) for r, part in
               zip(runners, (chunks[:half], chunks[half:]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def feature_diff(a: dict, b: dict) -> dict:
    """Max abs difference per output and relative to that output's largest magnitude (worst over keys)."""
    abs_diff = {k: float(np.abs(a[k] - b[k]).max()) for k in a}
    rel = {k: abs_diff[k] / max(float(np.abs(a[k]).max()), 1e-12) for k in a}
    blocks = [k for k in a if k.startswith("block_")]
    return {"max_abs": max(abs_diff.values()), "max_rel": max(rel.values()),
            "max_abs_blocks": max(abs_diff[k] for k in blocks), "max_rel_blocks": max(rel[k] for k in blocks),
            "worst": max(rel, key=rel.get)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, help="runner batch (default: params.yaml backbone.batch_size)")
    parser.add_argument("--convert-python", help="the conversion environment's python (default: params.yaml)")
    parser.add_argument("--cache", type=Path, help="conversion cache folder (default: params.yaml runtime.cache_dir)")
    parser.add_argument("--explore", action="store_true", help="also time the variants of extract_speed.md")
    args = parser.parse_args()
    params = load_params()
    backbone = params["backbone"]
    bn = dict(backbone["birdnet"])
    if args.convert_python:
        bn["convert_python"] = str(Path(args.convert_python).resolve())
    cache = args.cache or Path(params["runtime"]["cache_dir"]).expanduser()
    threads, batch, n = args.threads, args.batch or int(backbone["batch_size"]), args.windows

    with tempfile.TemporaryDirectory(prefix="extract_vs_tflite_") as tmp:
        tflite_path, probed, spec_path, blocks_path = prepare(bn, cache, Path(tmp))
        runner = lambda frontend, **kw: Backbone(probed, spec_path, blocks_path, **{
            "threads": threads, "batch_size": batch, "chunk_mapping": "center", "input_rate": 32_000,
            "progress": False, "frontend": frontend, **kw})
        graph_runner, dft_runner = runner("graph"), runner("dft")
        chunks = audio_chunks(n)
        inputs, _ = graph_runner.model_windows(chunks)  # the 3-s model windows (center of each chunk)
        raw = make_session(probed, threads)
        outputs = list(graph_runner.outputs.values())
        tfl = {b: Tflite(tflite_path, threads, b) for b in sorted({1, 16, batch})}
        timed = {
            f"tflite_b{b}": (lambda t=t: t.logits(inputs)) for b, t in tfl.items()}
        timed.update({
            f"onnxruntime_raw_b{batch}": lambda: [raw.run(outputs, {birdnet.INPUT_NAME: inputs[i:i + batch]})
                                                  for i in range(0, n, batch)],
            f"runner_graph_b{batch}": lambda: graph_runner.features(chunks),
            f"runner_dft_b{batch}": lambda: dft_runner.features(chunks),
        })
        if args.explore:
            for b in sorted({1, 4, 16, 32} - {batch}):
                timed[f"runner_dft_b{b}"] = (lambda r=runner("dft", batch_size=b): r.features(chunks))
            timed["runner_graph_b1"] = (lambda r=runner("graph", batch_size=1): r.features(chunks))
            f32 = runner("dft")
            f32.frontend.precision = "float32"
            timed[f"runner_dft_b{batch}_float32fft"] = lambda: f32.features(chunks)
            spin = runner("dft")  # the dft runner's back session does not spin by default: this one does
            spin.session = spin.frontend.back = make_session(spin.frontend.split.back, threads, spinning=True)
            timed[f"runner_dft_b{batch}_spin"] = lambda: spin.features(chunks)
            g = runner("graph")
            g.session = make_session(probed, threads, spinning=False)
            timed[f"runner_graph_b{batch}_nospin"] = lambda: g.features(chunks)
            timed[f"runner_dft_b{batch}_1thread"] = (lambda r=runner("dft", threads=1): r.features(chunks))
            timed[f"runner_dft_b{batch}_2x1thread"] = (
                lambda rs=[runner("dft", threads=1), runner("dft", threads=1)]: two_runners(rs, chunks))
            timed[f"runner_graph_b{batch}_2x1thread"] = (
                lambda rs=[runner("graph", threads=1), runner("graph", threads=1)]: two_runners(rs, chunks))
            nospin_raw = make_session(probed, threads, spinning=False)
            timed[f"onnxruntime_raw_b{batch}_nospin"] = lambda: [
                nospin_raw.run(outputs, {birdnet.INPUT_NAME: inputs[i:i + batch]}) for i in range(0, n, batch)]
        for fn in timed.values():  # warm-up (FFT plans, allocations)
            fn()
        rates = {k: [] for k in timed}
        for r in range(args.rounds):
            for key, fn in timed.items():
                rates[key].append(rate(fn, n))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), file=sys.stderr)
        wps = {k: round(float(np.median(v)), 2) for k, v in rates.items()}

        # equivalence: logits on the fixed test signals (3-s windows at 48 kHz: identity mapping)
        signals = birdnet.test_signals()
        reference = birdnet.tflite_logits(tflite_path, signals)
        exact = runner("dft", input_rate=birdnet.SAMPLE_RATE, batch_size=1)
        ours = exact.features(np.stack(list(signals.values()))).logits
        compare = lambda ours: {name: {"max_abs_logit_diff": float(np.abs(ours[i] - reference[name]).max()),
                                       "top_class_tflite": int(reference[name].argmax()),
                                       "top_class_ours": int(ours[i].argmax())} for i, name in enumerate(signals)}
        equivalence = compare(ours)
        if args.explore:
            exact.frontend.precision = "float32"
            equivalence_f32 = compare(exact.features(np.stack(list(signals.values()))).logits)
        diff = feature_diff(graph_runner.features(chunks).arrays(), dft_runner.features(chunks).arrays())

    best_tflite = max(v for k, v in wps.items() if k.startswith("tflite"))
    ours_wps = wps[f"runner_dft_b{batch}"]
    ratio = ours_wps / best_tflite
    result = {
        "backbone": "birdnet_v24 FP32", "windows": n, "rounds": args.rounds, "threads": threads, "batch_size": batch,
        "windows_per_s": wps, "ours": f"runner_dft_b{batch}", "tflite_best_windows_per_s": best_tflite,
        "ratio_ours_tflite": round(ratio, 3), "aim": AIM, "pass": bool(ratio >= AIM),
        "equivalence_vs_tflite": equivalence, "dft_vs_graph_features": diff,
        **({"equivalence_float32fft_vs_tflite": equivalence_f32} if args.explore else {}),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
    }
    (ROOT / BENCHMARK_RESULTS).mkdir(parents=True, exist_ok=True)
    (ROOT / BENCHMARK_RESULTS / "extract_vs_tflite.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in wps.items():
        print(f"{key:32s} {value:7.1f} windows/s")
    worst = max(v["max_abs_logit_diff"] for v in equivalence.values())
    same_top = all(v["top_class_tflite"] == v["top_class_ours"] for v in equivalence.values())
    print(f"ours (runner, dft frontend, batch {batch}) / TFLite (best batch) = {ratio:.2f} (aim >= {AIM}); "
          f"logits vs TFLite max {worst:.2e}, same top class {same_top}; features vs graph runner "
          f"max abs {diff['max_abs_blocks']:.2e}, max rel {diff['max_rel_blocks']:.2e} (blocks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
