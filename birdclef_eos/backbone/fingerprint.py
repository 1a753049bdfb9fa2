"""Identity by behaviour: a backbone file is the expected model when it behaves like it.

A fingerprint (JSON) holds what a correct file must show:

- ``interface``: the input name and window, and the width of each named output;
- ``inventory``: what surgery finds by structure (blocks, blocks per stage, stage widths);
- ``outputs`` (optional): every named output on fixed test signals (`signals`: seeded noise, a
  chirp and a tone over a noise floor, Perch-normalised), kept whole up to 2,048 values, else every
  k-th value; a file passes when each differs from the record by at most ``rtol`` times the
  record's largest magnitude.

`check` runs the checks in that order and raises `FingerprintError` naming the first that fails
(``interface``, ``inventory`` or ``outputs``) with what was found and what was expected. A
fingerprint without recorded outputs checks the interface and the inventory only, and the report
says so. `record` writes a fingerprint from a trusted file (the one whose sha256 is known).
Known sha256 values stay the fast path; this is the fallback for the same model in other bytes
(another exporter, the no-DFT variant, a SavedModel converted here).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx

from birdclef_eos.backbone.birdnet import test_signals
from birdclef_eos.backbone.runner import normalise_audio
from birdclef_eos.backbone.surgery import expose_blocks

KEEP = 2048          # values kept per output and signal (every k-th beyond that)
DEFAULT_RTOL = 1e-3  # relative to the recorded output's largest magnitude


class FingerprintError(RuntimeError):
    """A file that does not behave like the fingerprint; ``check`` names the failed check."""

    def __init__(self, check: str, message: str):
        super().__init__(f"fingerprint check '{check}' failed: {message}")
        self.check = check


def signals(window_samples: int, sample_rate: int) -> dict[str, np.ndarray]:
    """The fixed test windows [samples] float32: noise, and a chirp and a tone 0 dB over that noise
    (a floor keeps every spectrogram bin away from the log clamp, where float rounding would be
    amplified), Perch-normalised (mean removed, peak 0.25): what the runner feeds a Perch-style model."""
    base = test_signals(window_samples, sample_rate)
    raw = {"noise": base["noise"], "chirp": 0.2 * base["chirp"] + base["noise"],
           "tone": 0.2 * base["tone"] + base["noise"]}
    return {k: normalise_audio(v[None].astype(np.float32), "perch")[0] for k, v in raw.items()}


def run_outputs(model: onnx.ModelProto | str | Path, input_name: str, windows: dict[str, np.ndarray],
                names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """{output: {signal: value[0]}}, one window per run, one thread (reproducible)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for sig, x in windows.items():
        for name, value in zip(names, session.run(names, {input_name: x[None]})):
            out[name][sig] = value[0]
    return out


def inventory_summary(model: onnx.ModelProto, window_samples: int) -> dict:
    """{"n_blocks", "stage_blocks", "widths"} of what surgery finds in ``model``."""
    _, inventory = expose_blocks(model, window_samples)
    stages = [b["stage"] for b in inventory["blocks"]]
    order = sorted(set(stages))
    widths = [next(b["channels"] for b in inventory["blocks"] if b["stage"] == s) for s in order]
    return {"n_blocks": inventory["n_found"], "stage_blocks": [stages.count(s) for s in order], "widths": widths}


def thin(value: np.ndarray) -> dict:
    flat = np.asarray(value, np.float64).ravel()
    stride = max(1, -(-flat.size // KEEP))
    return {"shape": list(np.shape(value)), "stride": stride, "values": [float(v) for v in flat[::stride]]}


def record(model_path: str | Path, spec: dict, outputs: list[str], rtol: float = DEFAULT_RTOL,
           note: str = "") -> dict:
    """The fingerprint of a trusted file (spec: input_name, sample_rate, window_samples)."""
    model = onnx.load(str(model_path))
    windows = signals(spec["window_samples"], spec["sample_rate"])
    values = run_outputs(model, spec["input_name"], windows, outputs)
    return {
        "note": note,
        "interface": {"input_name": spec["input_name"], "window_samples": spec["window_samples"],
                      "sample_rate": spec["sample_rate"],
                      "outputs": {n: int(np.shape(values[n]["noise"])[-1]) for n in outputs}},
        "inventory": inventory_summary(model, spec["window_samples"]),
        "rtol": rtol,
        "outputs": {n: {s: thin(v) for s, v in per.items()} for n, per in values.items()},
    }


def check_interface(model: onnx.ModelProto, expected: dict, windows: dict) -> dict[str, dict[str, np.ndarray]]:
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if inputs != [expected["input_name"]]:
        raise FingerprintError("interface", f"graph inputs {inputs}, expected [{expected['input_name']!r}]")
    names = list(expected["outputs"])
    present = [o.name for o in model.graph.output]
    missing = [n for n in names if n not in present]
    if missing:
        raise FingerprintError("interface", f"outputs {missing} missing (the graph has {present})")
    try:
        values = run_outputs(model, expected["input_name"], windows, names)
    except Exception as exc:  # noqa: BLE001 - any runtime failure is an interface mismatch
        raise FingerprintError("interface", f"the graph does not run on a [1, {expected['window_samples']}] "
                                            f"window: {exc}") from exc
    for name, width in expected["outputs"].items():
        found = int(np.shape(values[name]["noise"])[-1])
        if found != width:
            raise FingerprintError("interface", f"output {name!r} has width {found}, expected {width}")
    return values


def check(model_path: str | Path, fingerprint: dict) -> dict:
    """Check the file against ``fingerprint``; returns the report {"checks": {...}, "max_rel_diff"}
    or raises FingerprintError naming the failed check."""
    model = onnx.load(str(model_path))
    expected = fingerprint["interface"]
    windows = signals(expected["window_samples"], expected["sample_rate"])
    values = check_interface(model, expected, windows)
    found = inventory_summary(model, expected["window_samples"])
    want = fingerprint["inventory"]
    for key in ("n_blocks", "stage_blocks", "widths"):
        if found[key] != want[key]:
            raise FingerprintError("inventory", f"{key} {found[key]}, expected {want[key]} "
                                                f"(found {found}, expected {want})")
    report = {"checks": {"interface": "passed", "inventory": "passed"}, "inventory": found}
    recorded = fingerprint.get("outputs") or {}
    if not recorded:
        report["checks"]["outputs"] = "not recorded in the fingerprint: interface and inventory only"
        return report
    rtol = float(fingerprint.get("rtol", DEFAULT_RTOL))
    worst = {}
    for name, per in recorded.items():
        if name not in values:
            values.update(run_outputs(model, expected["input_name"], windows, [name]))
        for sig, ref in per.items():
            got = np.asarray(values[name][sig], np.float64).ravel()[::ref["stride"]]
            ref_values = np.asarray(ref["values"])
            if got.shape != ref_values.shape:
                raise FingerprintError("outputs", f"output {name!r} on signal {sig!r}: {got.size} values, "
                                                  f"expected {ref_values.size}")
            scale = max(float(np.abs(ref_values).max()), 1e-12)
            rel = float(np.abs(got - ref_values).max()) / scale
            worst[f"{name}/{sig}"] = rel
            if not rel <= rtol:
                raise FingerprintError("outputs", f"output {name!r} on signal {sig!r} differs by {rel:.3g} "
                                                  f"of its largest value (tolerance {rtol:g}): not the same model")
    report["checks"]["outputs"] = "passed"
    report["max_rel_diff"] = worst
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m birdclef_eos.backbone.fingerprint record MODEL.onnx FINGERPRINT.json``: record the
    outputs of a trusted file into the fingerprint (its interface gives the input and outputs);
    ``check MODEL.onnx FINGERPRINT.json``: print the report or the failed check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("model", type=Path)
    parser.add_argument("fingerprint", type=Path)
    args = parser.parse_args(argv)
    base = json.loads(args.fingerprint.read_text())
    if args.action == "check":
        try:
            print(json.dumps(check(args.model, base), indent=2))
        except FingerprintError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    spec = base["interface"]
    recorded = record(args.model, spec, list(spec["outputs"]), float(base.get("rtol", DEFAULT_RTOL)), base.get("note", ""))
    if recorded["inventory"] != base["inventory"]:
        print(f"{args.model}: inventory {recorded['inventory']} differs from the fingerprint's {base['inventory']}",
              file=sys.stderr)
        return 1
    args.fingerprint.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"recorded {args.model} into {args.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
