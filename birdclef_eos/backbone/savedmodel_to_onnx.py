"""Convert a TensorFlow SavedModel (Perch v2 for CPU as Kaggle Models ships it) to ONNX, in
.venv-convert (tensorflow-cpu + tf2onnx), and record the SavedModel's own outputs on fixed
signals so the caller can prove the conversion (the same check as BirdNET's TFLite -> ONNX).

``.venv-convert/bin/python -m birdclef_eos.backbone.savedmodel_to_onnx SAVED_MODEL OUT.onnx
--signals SIGNALS.npz --reference REFERENCE.npz [--opset 17] [--signature serving_default]``

- SIGNALS.npz: named float32 arrays [samples] (one window each), written by the caller;
- REFERENCE.npz: ``<output>/<signal>`` -> the SavedModel's output for that signal (batch of 1).

tf2onnx keeps the signature's input and output names as the graph's; its made-up names are
replaced by structural ones (tflite_to_onnx.canonical_names), so the same SavedModel always gives
the same ONNX bytes. The last stdout line is a JSON record (seconds, versions, inputs, outputs).
Also: ``... --fixture WEIGHTS.npz OUT_DIR``-style building of the perch_tiny fixture as a
SavedModel lives in perch_tiny_tf.py, not here.

Imports only the standard library, numpy, onnx, tensorflow and tf2onnx: keep it that way.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def package_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("tensorflow-cpu", "tf2onnx", "onnx", "numpy")}


def reference_outputs(saved_model: Path, signature: str, signals: dict[str, np.ndarray]) -> tuple[dict, str, list]:
    """The SavedModel's outputs on each signal: ({"<output>/<signal>": array}, input name, output names)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    if signature not in loaded.signatures:
        raise KeyError(f"{saved_model}: no signature {signature!r} (has {sorted(loaded.signatures)})")
    fn = loaded.signatures[signature]
    args, kwargs = fn.structured_input_signature
    if args or len(kwargs) != 1:
        raise ValueError(f"{saved_model}: signature {signature!r} must take one named input, takes {kwargs}")
    input_name = next(iter(kwargs))
    out = {}
    names: list[str] = []
    for sig_name, x in signals.items():
        result = fn(**{input_name: tf.constant(x[None].astype(np.float32))})
        names = sorted(result)
        for key, value in result.items():
            out[f"{key}/{sig_name}"] = value.numpy()
    return out, input_name, names


def convert(saved_model: Path, output: Path, opset: int, signature: str) -> None:
    import onnx

    from birdclef_eos.backbone.tflite_to_onnx import canonical_names

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--signature_def",
               signature, "--opset", str(opset), "--output", str(raw)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not raw.exists():
            raise RuntimeError(f"tf2onnx failed on {saved_model} (exit {done.returncode}):\n{done.stderr[-3000:]}")
        model = canonical_names(onnx.load(str(raw)))
    onnx.checker.check_model(model)
    onnx.save_model(model, str(output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("saved_model", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--signals", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args(argv)
    if not (args.saved_model / "saved_model.pb").is_file():
        print(f"{args.saved_model}: not a SavedModel folder (no saved_model.pb)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    convert(args.saved_model, args.output, args.opset, args.signature)
    seconds = time.perf_counter() - start
    with np.load(args.signals) as data:
        signals = {k: data[k] for k in data.files}
    reference, input_name, outputs = reference_outputs(args.saved_model, args.signature, signals)
    np.savez(args.reference, **reference)
    print(f"wrote {args.output} in {seconds:.1f} s", file=sys.stderr)
    print(json.dumps({"seconds": round(seconds, 1), "versions": package_versions(), "opset": args.opset,
                      "signature": args.signature, "input": input_name, "outputs": outputs}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
