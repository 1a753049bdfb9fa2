"""Convert BirdNET's TFLite model to ONNX (run in .venv-convert, the only code that imports TF).

``.venv-convert/bin/python -m birdclef_eos.backbone.tflite_to_onnx MODEL.tflite OUT.onnx [--opset 17] [--dft factored64]``

tf2onnx alone fails on BirdNET's frontend: the model takes the real part of its STFT as
RFFT2D (fft_length [1, N]) -> Squeeze -> Cast(complex64 -> float32), and tf2onnx only
converts an RFFT2D feeding ComplexAbs. The rewriter below replaces that pattern, before
tf2onnx's op handlers run, with MatMuls against cosine/sine bases that compute the real part
of the one-sided DFT (by default in two float64 stages: see real_dft_rewriter).
Every node and initializer the rewriter adds is named after the RFFT node it replaces, and
tf2onnx's made-up names are replaced by structural ones afterwards (canonical_names), so the
same TFLite file always gives the same ONNX bytes.

Imports only the standard library, numpy, onnx, tensorflow and tf2onnx: keep it that way.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

FLOAT = 1  # onnx TensorProto.FLOAT
DOUBLE = 11  # onnx TensorProto.DOUBLE
DFT_METHODS = ("factored64", "factored32", "matmul64", "matmul32")


def cosine_basis(n_fft: int, dtype) -> np.ndarray:
    """[N, N/2+1] cos(2 pi t k / N); t*k is reduced mod N in integers for accuracy."""
    t = np.arange(n_fft, dtype=np.int64)[:, None]
    k = np.arange(n_fft // 2 + 1, dtype=np.int64)[None, :]
    return np.cos(2.0 * np.pi * ((t * k) % n_fft) / n_fft).astype(dtype)


def factor_pair(n_fft: int) -> tuple[int, int]:
    """N = N1 * N2 with N1 the largest divisor <= sqrt(N)."""
    n1 = max(d for d in range(1, int(np.sqrt(n_fft)) + 1) if n_fft % d == 0)
    return n1, n_fft // n1


def factored_weights(n_fft: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Constants of the two-stage (Cooley-Tukey) real part of the one-sided DFT, n = N2 n1 + n2,
    k = k1 + N1 k2: stage 1 over n1 (rows [cos; -sin], [2 N1, N1], multiplied from the left),
    twiddles over (k1, n2), stage 2 over n2 (rows [cos; sin], [2 N2, N2]), and the gather that
    puts (k1, k2) into k order."""
    n1, n2 = factor_pair(n_fft)
    a, b = np.arange(n1), np.arange(n2)
    angle = lambda num, den: 2.0 * np.pi * (num % den) / den
    stage1 = np.concatenate([np.cos(angle(np.outer(a, a), n1)), -np.sin(angle(np.outer(a, a), n1))], axis=0)
    twiddle = angle(np.outer(a, b), n_fft)  # [k1, n2]
    stage2 = np.concatenate([np.cos(angle(np.outer(b, b), n2)), np.sin(angle(np.outer(b, b), n2))], axis=0)
    k = np.arange(n_fft // 2 + 1)
    return {"stage1": stage1.astype(dtype), "twiddle_cos": np.cos(twiddle).astype(dtype),
            "twiddle_sin": np.sin(twiddle).astype(dtype), "stage2": stage2.astype(dtype),
            "order": ((k % n1) * n2 + k // n1).astype(np.int64), "split": np.array([n1, n1], np.int64)}


def factored_real_dft_numpy(frames: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The same computation as the ONNX nodes of real_dft_factored, in numpy (for tests)."""
    w = factored_weights(frames.shape[-1], dtype)
    n1 = int(w["split"][0])
    y = w["stage1"] @ frames.astype(dtype).reshape(*frames.shape[:-1], n1, -1)  # [.., 2 k1, n2]
    yr, yi = y[..., :n1, :], y[..., n1:, :]
    zr = yr * w["twiddle_cos"] + yi * w["twiddle_sin"]
    zi = yi * w["twiddle_cos"] - yr * w["twiddle_sin"]
    x = np.concatenate([zr, zi], axis=-1) @ w["stage2"]  # [.., k1, k2]
    return x.reshape(*frames.shape[:-1], -1)[..., w["order"]]


def rfft_consumers(g, rfft):
    """The Squeeze and Cast(complex -> float) that follow an RFFT2D, or None if the pattern differs."""
    squeezes = g.find_output_consumers(rfft.output[0])
    if len(squeezes) != 1 or squeezes[0].type != "Squeeze":
        return None
    casts = g.find_output_consumers(squeezes[0].output[0])
    if len(casts) != 1 or casts[0].type != "Cast" or g.get_dtype(casts[0].output[0]) != FLOAT:
        return None
    return squeezes[0], casts[0]


def real_dft_rewriter(method: str):
    """A tf2onnx rewriter replacing RFFT2D -> Squeeze -> Cast(real part) by the real part of the
    DFT, then the same Squeeze. Accuracy matters more than it seems: BirdNET compresses the
    spectrum with a power of about 0.23, so rounding noise in near-zero bins (digital silence,
    pure tones) moves logits. Measured max logit differences to TFLite on silence / tone:
    ``matmul32`` (one float32 MatMul with the cosine basis) 0.39 / 0.68, ``factored32``
    (two-stage Cooley-Tukey in float32) 0.44 / 0.28, ``matmul64`` 2.6e-5 / 2.4e-5 at about half
    the model's speed. ``factored64`` (the two-stage form in float64, about 5x fewer
    multiply-adds than one MatMul) is as accurate as matmul64 and cheap: the default."""
    if method not in DFT_METHODS:
        raise ValueError(f"dft method must be one of {DFT_METHODS}, got {method!r}")

    def rewrite_rfft_real_part(g, ops):
        try:
            for rfft in [op for op in ops if op.type == "RFFT2D"]:
                replace_rfft(g, rfft, method)
        except Exception as exc:  # tf2onnx.from_tflite logs rewriter errors and goes on: keep them
            rewrite_rfft_real_part.errors.append(exc)
            raise
        return g.get_nodes()

    rewrite_rfft_real_part.errors = []
    return rewrite_rfft_real_part


def add_node(g, op: str, inputs: list[str], name: str, attr: dict | None = None, outputs: int = 1,
             dtype: int = FLOAT) -> list[str]:
    """An ONNX node with a deterministic name; returns its output names."""
    names = [f"{name}:{i}" for i in range(outputs)]
    g.make_node(op, inputs, attr=attr or {}, name=name, outputs=names, dtypes=[dtype] * outputs)
    return names


def real_dft_matmul(g, frames: str, n_fft: int, scope: str, float64: bool) -> str:
    if float64:
        frames = add_node(g, "Cast", [frames], f"{scope}/to_double", {"to": DOUBLE}, dtype=DOUBLE)[0]
    basis = g.make_const(f"{scope}/cos_basis", cosine_basis(n_fft, np.float64 if float64 else np.float32))
    real = add_node(g, "MatMul", [frames, basis.output[0]], f"{scope}/real_dft", dtype=DOUBLE if float64 else FLOAT)[0]
    if float64:
        real = add_node(g, "Cast", [real], f"{scope}/to_float", {"to": FLOAT})[0]
    return real


def real_dft_factored(g, frames: str, n_fft: int, rank: int, scope: str, float64: bool) -> str:
    """Nodes of factored_real_dft_numpy; ``frames`` is [..., N] of rank ``rank``."""
    dtype = DOUBLE if float64 else FLOAT
    w = factored_weights(n_fft, np.float64 if float64 else np.float32)
    n1, n2 = factor_pair(n_fft)
    c = {k: g.make_const(f"{scope}/w_{k}", v).output[0] for k, v in w.items()}
    c["shape"] = g.make_const(f"{scope}/w_shape", np.array([0] * (rank - 1) + [n1, n2], np.int64)).output[0]
    c["flat"] = g.make_const(f"{scope}/w_flat", np.array([0] * (rank - 1) + [n_fft], np.int64)).output[0]
    op = lambda kind, inputs, tag, attr=None, outputs=1: add_node(g, kind, inputs, f"{scope}/{tag}", attr, outputs, dtype)
    if float64:
        frames = op("Cast", [frames], "to_double", {"to": DOUBLE})[0]
    # no Transpose next to a MatMul: onnxruntime would fuse them into FusedMatMul, float32 only
    x = op("Reshape", [frames, c["shape"]], "split_index")[0]                    # [.., n1, n2]
    y = op("MatMul", [c["stage1"], x], "stage1")[0]                              # [.., 2 k1, n2]
    yr, yi = op("Split", [y, c["split"]], "re_im", {"axis": -2}, outputs=2)
    mul = lambda a, b, tag: op("Mul", [a, b], tag)[0]
    zr = op("Add", [mul(yr, c["twiddle_cos"], "yr_cos"), mul(yi, c["twiddle_sin"], "yi_sin")], "zr")[0]
    zi = op("Sub", [mul(yi, c["twiddle_cos"], "yi_cos"), mul(yr, c["twiddle_sin"], "yr_sin")], "zi")[0]
    z = op("Concat", [zr, zi], "z", {"axis": -1})[0]                             # [.., k1, 2 n2]
    x = op("MatMul", [z, c["stage2"]], "stage2")[0]                              # [.., k1, k2]
    x = op("Reshape", [x, c["flat"]], "flatten")[0]
    x = op("Gather", [x, c["order"]], "k_order", {"axis": -1})[0]                # [.., N/2+1]
    if float64:
        x = add_node(g, "Cast", [x], f"{scope}/to_float", {"to": FLOAT})[0]
    return x


def replace_rfft(g, rfft, method: str) -> None:
    found = rfft_consumers(g, rfft)
    fft_length = rfft.inputs[1].get_tensor_value(as_list=True) if rfft.inputs[1].is_const() else None
    if found is None or fft_length is None or fft_length[0] != 1:
        raise ValueError(f"RFFT2D node '{rfft.name}': expected RFFT2D(fft_length [1, N]) -> Squeeze -> "
                         f"Cast(float32), found fft_length {fft_length} and a different consumer chain")
    squeeze, cast = found
    n_fft = int(fft_length[1])
    in_shape = g.get_shape(rfft.input[0])
    if in_shape is None or in_shape[-1] != n_fft:
        raise ValueError(f"RFFT2D node '{rfft.name}': input shape {in_shape} does not end in N={n_fft}")
    scope = f"{rfft.name}/real_dft"
    if method.startswith("factored"):
        real = real_dft_factored(g, rfft.input[0], n_fft, len(in_shape), scope, float64=method == "factored64")
    else:
        real = real_dft_matmul(g, rfft.input[0], n_fft, scope, float64=method == "matmul64")
    g.set_shape(real, g.get_shape(rfft.output[0]))
    g.replace_input(squeeze, squeeze.input[0], real, 0)
    g.set_dtype(squeeze.output[0], FLOAT)
    g.replace_all_inputs(cast.output[0], squeeze.output[0])
    g.remove_node(cast.name)
    g.remove_node(rfft.name)


AUTO_NAME = re.compile(r"__c?\d+")  # tf2onnx's utils.make_name suffix: a process-wide counter


def canonical_names(model):
    """Make tf2onnx's output independent of its run-to-run variation.

    Measured: the node list (order, op types, names taken from the TFLite file) is stable, but
    the names tf2onnx makes up carry a process-wide counter, initializers come out in a varying
    order, and when it merges equal constants or equal nodes it keeps whichever name it met
    first (also with a fixed PYTHONHASHSEED). So every made-up node (``...__<n>``) is renamed
    ``<op_type>__c<k>`` in node order (its outputs ``<node>:<slot>``), every initializer is
    named after its first consumer (``<node>/in<slot>``) and sorted by first use, and symbolic
    dims are renumbered. Names from the TFLite file and graph input/output names are kept."""
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    init_names = {t.name for t in graph.initializer}
    tensor_map: dict[str, str] = {}
    init_map: dict[str, str] = {}
    first_use: dict[str, int] = {}
    made_up = 0
    for i, node in enumerate(graph.node):
        if AUTO_NAME.search(node.name):
            node.name = f"{node.op_type}__c{made_up}"
            made_up += 1
        for slot, out in enumerate(node.output):
            if out not in keep and AUTO_NAME.search(out):
                tensor_map[out] = f"{node.name}:{slot}"
        inputs = []
        for slot, x in enumerate(node.input):
            if x in init_names:
                if x not in init_map:
                    init_map[x] = f"{node.name}/in{slot}"
                    first_use[init_map[x]] = i
                inputs.append(init_map[x])
            else:
                inputs.append(tensor_map.get(x, x))
        node.input[:] = inputs
        node.output[:] = [tensor_map.get(x, x) for x in node.output]
    unused = [t.name for t in graph.initializer if t.name not in init_map]
    if unused:
        raise ValueError(f"converted graph has unused initializers: {unused[:5]}")
    for init in graph.initializer:
        init.name = init_map[init.name]
    inits = sorted(graph.initializer, key=lambda t: (first_use[t.name], t.name))
    graph.ClearField("initializer")
    graph.initializer.extend(inits)
    for vi in graph.value_info:
        vi.name = init_map.get(vi.name) or tensor_map.get(vi.name, vi.name)
    infos = sorted(graph.value_info, key=lambda v: v.name)
    graph.ClearField("value_info")
    graph.value_info.extend(infos)
    canonical_dim_params(model)
    return model


def canonical_dim_params(model):
    """Renumber tf2onnx's symbolic dimension names (``unk__N``) in order of appearance."""
    graph = model.graph
    mapping: dict[str, str] = {}
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        for dim in vi.type.tensor_type.shape.dim:
            if dim.dim_param and AUTO_NAME.search(dim.dim_param):
                dim.dim_param = mapping.setdefault(dim.dim_param, f"unk__c{len(mapping)}")


EMBEDDING = "embedding"  # graph output added for the 1024-d global average pool


def expose_embedding(model):
    """Rename BirdNET's squeezed global-average-pool tensor to ``embedding`` and make it a
    graph output (the model's own outputs are unchanged)."""
    from onnx import TensorProto, helper

    graph = model.graph
    pools = [n for n in graph.node if n.op_type == "GlobalAveragePool" and "GLOBAL_AVG_POOL" in n.name]
    if len(pools) != 1:
        raise ValueError(f"expected one GlobalAveragePool named *GLOBAL_AVG_POOL*, found {[n.name for n in pools]}")
    squeezes = [n for n in graph.node if n.op_type == "Squeeze" and pools[0].output[0] in n.input]
    if len(squeezes) != 1:
        raise ValueError(f"expected one Squeeze after {pools[0].name}, found {[n.name for n in squeezes]}")
    old = squeezes[0].output[0]
    for node in graph.node:
        node.input[:] = [EMBEDDING if x == old else x for x in node.input]
    squeezes[0].output[0] = EMBEDDING
    batch = graph.output[0].type.tensor_type.shape.dim[0].dim_param or "batch"
    # the classifier's weight [channels, classes] gives the embedding width
    weights = {i.name: list(i.dims) for i in graph.initializer}
    classifier = [n for n in graph.node if n.op_type == "MatMul" and n.input[0] == EMBEDDING]
    channels = weights.get(classifier[0].input[1], [None])[0] if classifier else None
    graph.output.append(helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, [batch, channels]))
    return model


def package_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("tensorflow-cpu", "tf2onnx", "onnx", "numpy")}


def convert(tflite: Path, output: Path, opset: int, method: str) -> None:
    import onnx
    import tf2onnx

    rewriter = real_dft_rewriter(method)
    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=opset, custom_rewriter=[rewriter])
    if rewriter.errors:
        raise RuntimeError(f"{tflite}: rewriting RFFT2D failed") from rewriter.errors[0]
    model = expose_embedding(canonical_names(model))
    onnx.checker.check_model(model)
    onnx.save_model(model, str(output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tflite", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--dft", choices=DFT_METHODS, default="factored64")
    args = parser.parse_args(argv)
    if not args.tflite.is_file():
        print(f"{args.tflite}: TFLite model not found", file=sys.stderr)
        return 2
    start = time.perf_counter()
    convert(args.tflite, args.output, args.opset, args.dft)
    seconds = time.perf_counter() - start
    print(f"wrote {args.output} in {seconds:.1f} s", file=sys.stderr)
    # last stdout line: the record stages/birdnet.py reads
    print(json.dumps({"seconds": round(seconds, 1), "versions": package_versions(),
                      "opset": args.opset, "dft": args.dft}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
