"""Backbone runner throughput: windows/s of the raw ONNX session vs the full runner, side by side.

Raw: the probed ONNX session alone, fed ready-made model inputs (already decoded, resampled, cut
and normalised) in batches of `backbone.batch_size`. Runner: the same audio from FLAC files on disk
through the full path every later stage uses: decode, cut 5-s chunks, `Backbone.features` (resample
to the model rate, chunk mapping, normalisation, batching). Rounds alternate raw and runner, and the
median of each is reported; the issue aims for the runner keeping at least 90% of raw throughput.
Also measured: the original (unprobed) graph, to show what exposing the block outputs costs.

Backbone: BirdNET V2.4 (the default; converted once and cached by stages.birdnet), or the
perch_tiny fixture with `--backbone perch_tiny` (or when the conversion environment is absent).

Usage: python benchmarks/runner_throughput.py [--backbone birdnet_v24|perch_tiny] [--files 4] [--rounds 3]
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

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from birdclef_eos.audio.decode import read_audio, write_flac  # noqa: E402
from birdclef_eos.backbone.runner import Backbone  # noqa: E402
from birdclef_eos.backbone.surgery import expose_blocks  # noqa: E402
from stages.params import load_params  # noqa: E402
from stages.paths import BENCHMARK_RESULTS  # noqa: E402

LIMIT = 0.90
RATE, CHUNK_S, FILE_S = 32_000, 5, 60


def birdnet_backbone(backbone: dict, cache: Path) -> tuple[Path, dict]:
    from birdclef_eos.backbone import birdnet

    onnx_path = birdnet.prepare(backbone["birdnet"], cache)["onnx"]
    spec = {"name": "birdnet_v24", "input_name": birdnet.INPUT_NAME, "sample_rate": birdnet.SAMPLE_RATE,
            "window_samples": birdnet.WINDOW_SAMPLES, "normalisation": "none",
            "logits_output": birdnet.LOGITS_OUTPUT, "embedding_output": birdnet.EMBEDDING_OUTPUT}
    return Path(onnx_path), spec


def perch_tiny_backbone(backbone: dict, folder: Path) -> tuple[Path, dict]:
    from birdclef_eos.backbone.perch_tiny import export_perch_tiny

    tiny = backbone.get("perch_tiny", {})
    path = folder / "perch_tiny.onnx"
    spec = export_perch_tiny(path, tiny.get("seed", 0), tiny.get("width_multiplier", 0.25))
    return path, {"name": "perch_tiny", **spec}


def prepare(name: str, backbone: dict, folder: Path, cache: Path) -> tuple[Path, Path, Path, Path, dict]:
    """(original onnx, probed onnx, backbone.json, blocks.json, spec) in ``folder``."""
    if name == "birdnet_v24":
        try:
            original, spec = birdnet_backbone(backbone, cache)
        except FileNotFoundError as exc:
            print(f"BirdNET unavailable ({exc}); using perch_tiny", file=sys.stderr)
            original, spec = perch_tiny_backbone(backbone, folder)
    else:
        original, spec = perch_tiny_backbone(backbone, folder)
    probed, inventory = expose_blocks(onnx.load(str(original)), spec["window_samples"], spec["embedding_output"])
    inventory.update(logits_output=spec["logits_output"], embedding_output=spec["embedding_output"])
    paths = folder / "probed.onnx", folder / "backbone.json", folder / "blocks.json"
    onnx.save(probed, str(paths[0]))
    paths[1].write_text(json.dumps(spec))
    paths[2].write_text(json.dumps(inventory))
    return (original, *paths, spec)


def write_audio(folder: Path, files: int) -> list[Path]:
    """One-minute 32 kHz FLAC files: noise plus chirping calls (seeded)."""
    rng = np.random.default_rng(0)
    t = np.arange(FILE_S * RATE) / RATE
    paths = []
    for i in range(files):
        x = 0.05 * rng.standard_normal(len(t))
        for start in rng.uniform(0, FILE_S - 1, 20):
            on = (t >= start) & (t < start + 0.5)
            x[on] += 0.3 * np.sin(2 * np.pi * (rng.uniform(1500, 6000) * (t[on] - start) + 2000 * (t[on] - start) ** 2))
        paths.append(folder / f"soundscape_{i}.flac")
        write_flac(paths[-1], x.astype(np.float32), RATE)
    return paths


def decode_chunks(paths: list[Path]) -> np.ndarray:
    """Every 5-s chunk of every file, [N, 160000] at 32 kHz."""
    n = CHUNK_S * RATE
    out = []
    for path in paths:
        x, _ = read_audio(path, RATE)
        out.append(x[: len(x) // n * n].reshape(-1, n))
    return np.concatenate(out)


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_raw(sess: ort.InferenceSession, inputs: np.ndarray, batch: int, input_name: str, outputs) -> float:
    start = time.perf_counter()
    for i in range(0, len(inputs), batch):
        sess.run(outputs, {input_name: inputs[i:i + batch]})
    return len(inputs) / (time.perf_counter() - start)


def time_runner(runner: Backbone, paths: list[Path]) -> float:
    start = time.perf_counter()
    chunks = decode_chunks(paths)
    runner.features(chunks)
    return len(chunks) / (time.perf_counter() - start)


def time_preparation(runner: Backbone, paths: list[Path]) -> float:
    """Seconds per window of the runner's own work alone: decode, resample, cut, normalise."""
    start = time.perf_counter()
    chunks = decode_chunks(paths)
    for i in range(0, len(chunks), runner.batch_size):
        runner.model_windows(chunks[i:i + runner.batch_size])
    return (time.perf_counter() - start) / len(chunks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="birdnet_v24", choices=["birdnet_v24", "perch_tiny"])
    parser.add_argument("--files", type=int, default=4, help="one-minute audio files (12 chunks each)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    params = load_params()
    backbone, runtime = params["backbone"], params["runtime"]
    threads, batch = int(backbone["threads"]), int(backbone["batch_size"])

    with tempfile.TemporaryDirectory(prefix="runner_throughput_") as tmp:
        folder = Path(tmp)
        original, probed, spec_path, blocks_path, spec = prepare(args.backbone, backbone, folder, Path(runtime["cache_dir"]).expanduser())
        paths = write_audio(folder, args.files)
        runner = Backbone(probed, spec_path, blocks_path, threads=threads, batch_size=batch,
                          chunk_mapping=backbone["chunk_mapping"], input_rate=RATE, progress=False,
                          frontend=backbone["frontend"])
        inputs, _ = runner.model_windows(decode_chunks(paths))  # ready-made model inputs for the raw session
        raw_probed = session(probed, threads)
        raw_original = session(original, threads)
        outputs = list(runner.outputs.values())
        time_raw(raw_probed, inputs[:batch], batch, spec["input_name"], outputs)  # warm-up
        runner.features(decode_chunks(paths[:1]))
        raw, full, orig, prep = [], [], [], []
        for r in range(args.rounds):
            raw.append(time_raw(raw_probed, inputs, batch, spec["input_name"], outputs))
            full.append(time_runner(runner, paths))
            orig.append(time_raw(raw_original, inputs, batch, spec["input_name"], None))
            prep.append(time_preparation(runner, paths))
            print(f"round {r + 1}: raw {raw[-1]:.1f} w/s, runner {full[-1]:.1f} w/s, "
                  f"original graph {orig[-1]:.1f} w/s", file=sys.stderr)

    raw_wps, runner_wps, orig_wps = (float(np.median(v)) for v in (raw, full, orig))
    ratio = runner_wps / raw_wps
    prep_s = float(np.median(prep))
    serial_ratio = (1 / raw_wps) / (1 / raw_wps + prep_s)  # if preparation never overlapped inference
    result = {
        "backbone": spec["name"], "windows": int(len(inputs)), "rounds": args.rounds,
        "threads": threads, "batch_size": batch, "chunk_mapping": backbone["chunk_mapping"],
        "raw_windows_per_s": round(raw_wps, 2), "runner_windows_per_s": round(runner_wps, 2),
        "runner_audio_s_per_s": round(runner_wps * CHUNK_S, 1),
        "ratio": round(ratio, 3), "limit": LIMIT, "pass": bool(ratio >= LIMIT),
        "preparation_ms_per_window": round(1000 * prep_s, 2),
        "serial_bound_ratio": round(serial_ratio, 3),
        "original_graph_windows_per_s": round(orig_wps, 2),
        "probed_vs_original": round(raw_wps / orig_wps, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
    }
    (ROOT / BENCHMARK_RESULTS).mkdir(parents=True, exist_ok=True)
    (ROOT / BENCHMARK_RESULTS / "runner_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{spec['name']}: raw session {raw_wps:.1f} windows/s, full runner {runner_wps:.1f} windows/s "
          f"-> ratio {ratio:.3f} (aim >= {LIMIT}); original graph {orig_wps:.1f} windows/s "
          f"(probed/original {raw_wps / orig_wps:.3f}); runner's own work {1000 * prep_s:.1f} ms/window "
          f"(ratio without overlap at worst {serial_ratio:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
