"""Frontend cut: compute a backbone's DFT outside onnxruntime (numpy), feeding a graph cut after it.

BirdNET's converted ONNX computes the real part of its two STFTs in-graph (birdclef_eos/backbone/tflite_to_onnx.py,
`<rfft>/real_dft/*` nodes, by default a two-stage float64 DFT): onnxruntime spends over half of
the model's time there. A real FFT (pocketfft, via numpy) computes the same values in a fraction
of that time. The cut splits the graph in two:

- front: graph input -> the tensors fed to each DFT (windowed frames [..., N], float32); cheap
  (normalisation, framing, windowing);
- numpy: the DFT of each, ``np.fft.rfft`` in float64 (real part, or [re, im] stacked for an ONNX
  ``DFT`` node), cast back to the graph's float32;
- back: the DFT results (plus the graph input, if the body reads it elsewhere) -> every output.

`FrontendRunner` runs front and numpy in the caller's thread (the Backbone's preparation thread)
and back in the main session, so the DFT overlaps the previous batch's body.

Two cut kinds, both located in the graph without reading any file but the model:

- ``dft``: every DFT of the graph, recognised as a scope named ``.../real_dft`` (what
  birdclef_eos/backbone/tflite_to_onnx.py writes, whatever its ``dft`` method) or an ONNX ``DFT`` node
  (real input, forward); nothing else is recognised as a DFT (a hand-written cosine MatMul is not).
- ``tensor:<name>``: cut at a named tensor (for instance Perch's ``spectrogram``): the front
  graph runs in the preparation thread on its own session, nothing moves to numpy. Useful only
  when that overlap pays; it computes exactly the same operations.

``auto`` takes ``dft`` when the graph has a DFT, else leaves the graph whole (``graph``).
`make_session` also holds the execution-provider knob (``cpu`` | ``cuda`` for onnxruntime,
``torch-cpu`` | ``torch-cuda`` for the PyTorch route of birdclef_eos/backbone/torch_route.py).
Measured numbers: benchmarks/results/extract_speed.md. Imports numpy, onnx and onnxruntime
(scipy only for the float32 FFT the benchmark compares).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from birdclef_eos.backbone.choices import FRONTENDS, PROVIDERS, TORCH_PROVIDERS

DFT_SCOPE = re.compile(r"^(.*?/real_dft)(?:/|$)")
PRECISIONS = ("float64", "float32")


class FrontendError(RuntimeError):
    pass


@dataclass
class Cut:
    """One place where the graph is cut: ``front`` is computed by the front graph, ``back`` is fed
    to the back graph; ``kind`` says what numpy does in between."""
    front: str
    back: str
    kind: str                 # "real_dft" (real part of the one-sided DFT), "onnx_dft", "identity"
    scope: str = ""
    attrs: dict = field(default_factory=dict)


def make_session(model, threads: int, provider: str = "cpu", spinning: bool = True):
    """An onnxruntime session on ``model`` (path or ModelProto) with ``threads`` intra-op threads on
    execution provider ``provider`` ("cpu" or "cuda"); raises naming the knob when onnxruntime
    lacks the provider. ``torch-cpu`` / ``torch-cuda`` give a `TorchSession` (same `run` and
    `get_outputs`) that evaluates the graph with PyTorch on that device."""
    import onnxruntime as ort

    if provider in TORCH_PROVIDERS:
        from birdclef_eos.backbone.torch_route import TorchSession

        return TorchSession(model, TORCH_PROVIDERS[provider], threads)
    if provider not in PROVIDERS:
        raise FrontendError(f"unknown execution provider {provider!r} (runtime.provider); "
                            f"expected one of {sorted(PROVIDERS) + sorted(TORCH_PROVIDERS)}")
    available = ort.get_available_providers()
    if PROVIDERS[provider][0] not in available:
        raise FrontendError(f"execution provider {provider!r} (runtime.provider) needs "
                            f"{PROVIDERS[provider][0]}, which this onnxruntime lacks (available: "
                            f"{available}); install onnxruntime-gpu or set provider: cpu")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=PROVIDERS[provider])


def _producers(graph: onnx.GraphProto) -> dict[str, int]:
    return {out: i for i, node in enumerate(graph.node) for out in node.output}


def real_dft_cuts(graph: onnx.GraphProto) -> list[Cut]:
    """One cut per ``.../real_dft`` scope: its single activation input and single output read outside."""
    weights = {t.name for t in graph.initializer}
    scopes: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        match = DFT_SCOPE.match(node.name)
        if match:
            scopes.setdefault(match.group(1), []).append(node)
    consumers: dict[str, set] = {}
    for node in graph.node:
        match = DFT_SCOPE.match(node.name)
        for name in node.input:
            consumers.setdefault(name, set()).add(match.group(1) if match else None)
    graph_outputs = {o.name for o in graph.output}
    constants = {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    cuts = []
    for scope, nodes in scopes.items():
        made = {out for n in nodes for out in n.output}
        ins = sorted({x for n in nodes for x in n.input if x and x not in made and x not in weights
                      and x not in constants})
        outs = sorted({x for x in made if consumers.get(x, set()) - {scope} or x in graph_outputs})
        if len(ins) != 1 or len(outs) != 1:
            raise FrontendError(f"DFT scope {scope!r}: expected one input and one output, found inputs "
                                f"{ins} and outputs {outs}")
        cuts.append(Cut(front=ins[0], back=outs[0], kind="real_dft", scope=scope))
    return cuts


def onnx_dft_cuts(graph: onnx.GraphProto, opset: int) -> list[Cut]:
    """One cut per forward ONNX ``DFT`` node with a constant (or default) length and axis."""
    cuts = []
    weights = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "DFT":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("inverse", 0):
            raise FrontendError(f"DFT node {node.name!r}: inverse DFT is not supported by frontend 'dft'")
        length = None
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in weights:
                raise FrontendError(f"DFT node {node.name!r}: dft_length {node.input[1]!r} is not a constant")
            length = int(onnx.numpy_helper.to_array(weights[node.input[1]]))
        axis = attrs.get("axis", 1)
        if opset >= 20:
            axis = -2
            if len(node.input) > 2 and node.input[2]:
                if node.input[2] not in weights:
                    raise FrontendError(f"DFT node {node.name!r}: axis {node.input[2]!r} is not a constant")
                axis = int(onnx.numpy_helper.to_array(weights[node.input[2]]))
        cuts.append(Cut(front=node.input[0], back=node.output[0], kind="onnx_dft", scope=node.name,
                        attrs={"onesided": int(attrs.get("onesided", 0)), "axis": axis, "length": length}))
    return cuts


def find_cuts(model: onnx.ModelProto, frontend: str) -> list[Cut]:
    """The cuts for ``frontend`` ("dft" or "tensor:<name>"); raises naming the knob if none is found."""
    graph = model.graph
    if frontend.startswith("tensor:"):
        name = frontend.split(":", 1)[1]
        if name not in _producers(graph):
            raise FrontendError(f"frontend {frontend!r}: no node produces tensor {name!r}")
        return [Cut(front=name, back=name, kind="identity", scope=name)]
    if frontend != "dft":
        raise FrontendError(f"unknown frontend {frontend!r}; expected one of {FRONTENDS} or 'tensor:<name>'")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    cuts = real_dft_cuts(graph) + onnx_dft_cuts(graph, opset)
    if not cuts:
        raise FrontendError("frontend 'dft': the graph has no recognisable DFT (no '.../real_dft' scope "
                            "from birdclef_eos/backbone/tflite_to_onnx.py, no ONNX DFT node); use frontend 'graph' or "
                            "'tensor:<name>'")
    return cuts


def resolve(model: onnx.ModelProto, frontend: str) -> str:
    """``auto`` -> ``dft`` when the graph has a recognisable DFT, else ``graph``; others unchanged."""
    if frontend != "auto":
        return frontend
    try:
        find_cuts(model, "dft")
    except FrontendError:
        return "graph"
    return "dft"


def needed_nodes(graph: onnx.GraphProto, outputs: list[str], stop: set[str]) -> list[int]:
    """Indices (graph order) of the nodes computing ``outputs`` without going above ``stop``."""
    producer = _producers(graph)
    wanted, seen, todo = set(), set(), list(outputs)
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        seen.add(name)
        if name in producer:
            i = producer[name]
            if i not in wanted:
                wanted.add(i)
                todo.extend(x for x in graph.node[i].input if x)
    return sorted(wanted)


def subgraph(model: onnx.ModelProto, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
             name: str) -> onnx.ModelProto:
    """The model computing ``outputs`` from ``inputs`` (and the initializers); raises if it needs
    another activation."""
    graph = model.graph
    stop = {v.name for v in inputs}
    idx = needed_nodes(graph, [v.name for v in outputs], stop)
    nodes = [graph.node[i] for i in idx]
    used = {x for n in nodes for x in n.input} | {v.name for v in outputs}
    inits = [t for t in graph.initializer if t.name in used]
    made = {x for n in nodes for x in n.output} | stop | {t.name for t in inits}
    missing = sorted(used - made - {""})
    if missing:
        raise FrontendError(f"{name}: the cut leaves tensors {missing[:5]} without a producer")
    new_graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    onnx.checker.check_model(out)
    return out


def value_info(name: str, value: np.ndarray, batch: str = "batch") -> onnx.ValueInfoProto:
    dtype = helper.np_dtype_to_tensor_dtype(value.dtype)
    return helper.make_tensor_value_info(name, dtype, [batch] + list(value.shape[1:]))


def probe_values(model: onnx.ModelProto, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    """Values of internal tensors ``names`` on input ``x`` (one onnxruntime run, no optimisation
    that could drop them)."""
    import onnxruntime as ort

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in existing)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(list(names), {model.graph.input[0].name: x})


@dataclass
class Split:
    front: onnx.ModelProto
    back: onnx.ModelProto
    cuts: list[Cut]
    passthrough: bool  # the back graph also reads the original input


def skip_reshapes(graph: onnx.GraphProto, cuts: list[Cut]) -> None:
    """Move a real_dft cut's front above Unsqueeze / Squeeze nodes (the DFT's last axis is kept;
    the result is reshaped instead): onnxruntime would copy the tensor to return it."""
    producer = _producers(graph)
    for cut in cuts:
        while cut.kind == "real_dft" and cut.front in producer:
            node = graph.node[producer[cut.front]]
            if node.op_type not in ("Unsqueeze", "Squeeze"):
                break
            cut.attrs.setdefault("dft_input", cut.front)  # split_model checks the DFT axis kept its size
            cut.front = node.input[0]


def split_model(model: onnx.ModelProto, frontend: str, window_samples: int) -> Split:
    """Front and back graphs around the cuts of ``frontend``; the back graph keeps every output."""
    cuts = find_cuts(model, frontend)
    graph = model.graph
    inp = graph.input[0]
    x = np.zeros((1, window_samples), np.float32)
    x[0, ::7] = 0.1
    skip_reshapes(graph, cuts)
    names = [c.front for c in cuts] + [c.back for c in cuts] + [c.attrs.get("dft_input", c.front) for c in cuts]
    values = dict(zip(names, probe_values(model, names, x)))
    for cut in cuts:
        original = cut.attrs.pop("dft_input", cut.front)
        if values[cut.front].shape[-1] != values[original].shape[-1]:
            cut.front = original  # the skipped node touched the DFT axis: keep the DFT's own input
        if cut.kind == "real_dft":  # the DFT result is reshaped to what the back graph reads
            cut.attrs["shape"] = list(values[cut.back].shape[1:])
    batch = inp.type.tensor_type.shape.dim[0].dim_param or "batch"
    front_out = [value_info(c.front, values[c.front], batch) for c in cuts]
    back_in = [value_info(c.back, values[c.back], batch) for c in dict((c.back, c) for c in cuts).values()]
    # does the body read the original input other than through the cuts?
    idx = needed_nodes(graph, [o.name for o in graph.output], {c.back for c in cuts})
    passthrough = any(inp.name in graph.node[i].input for i in idx) or inp.name in {o.name for o in graph.output}
    if passthrough:
        back_in.append(inp)
    front = subgraph(model, [inp], front_out, "frontend")
    back = subgraph(model, back_in, list(graph.output), "body")
    return Split(front, back, cuts, passthrough)


def real_dft(frames: np.ndarray, precision: str = "float64", rows: int = 64) -> np.ndarray:
    """Real part of the one-sided DFT over the last axis, float32 (what `.../real_dft` computes).
    ``float64`` (default) casts each block of ``rows`` frames to float64 first: cache-sized blocks
    are 2.5x faster than one call over the batch. ``float32`` is a float32 FFT (scipy)."""
    if precision not in PRECISIONS:
        raise FrontendError(f"unknown dft precision {precision!r}; expected one of {PRECISIONS}")
    flat = frames.reshape(-1, frames.shape[-1])
    out = np.empty((flat.shape[0], frames.shape[-1] // 2 + 1), np.float32)
    if precision == "float32":
        import scipy.fft

        out[:] = scipy.fft.rfft(flat.astype(np.float32, copy=False), axis=-1).real
    else:
        for i in range(0, len(flat), rows):
            out[i:i + rows] = np.fft.rfft(flat[i:i + rows].astype(np.float64), axis=-1).real
    return out.reshape(*frames.shape[:-1], -1)


def onnx_dft(signal: np.ndarray, onesided: int, axis: int, length: int | None, precision: str) -> np.ndarray:
    """numpy of ONNX DFT (forward): real [..., 1] or complex [..., 2] input -> [..., 2] (re, im)."""
    dtype = np.float64 if precision == "float64" else np.float32
    axis = axis % signal.ndim
    if signal.shape[-1] == 1:
        z = signal[..., 0].astype(dtype)
        n = length or z.shape[axis]
        spectrum = np.fft.rfft(z, n=n, axis=axis) if onesided else np.fft.fft(z, n=n, axis=axis)
    else:
        z = signal[..., 0].astype(dtype) + 1j * signal[..., 1].astype(dtype)
        n = length or z.shape[axis]
        spectrum = np.fft.fft(z, n=n, axis=axis)
        if onesided:
            spectrum = np.take(spectrum, np.arange(n // 2 + 1), axis=axis)
    return np.stack([spectrum.real, spectrum.imag], axis=-1).astype(signal.dtype)


class FrontendRunner:
    """Front session + numpy DFT (``prepare``, any thread) and back session (``run``)."""

    def __init__(self, model: onnx.ModelProto, frontend: str, window_samples: int, make_session,
                 precision: str = "float64"):
        if precision not in PRECISIONS:
            raise FrontendError(f"unknown dft precision {precision!r}; expected one of {PRECISIONS}")
        self.split = split_model(model, frontend, window_samples)
        self.precision = precision
        self.input_name = model.graph.input[0].name
        self.front = make_session(self.split.front, 1)
        self.back = make_session(self.split.back, None)
        self.front_outputs = [c.front for c in self.split.cuts]

    def prepare(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Model input [B, samples] -> the back graph's feeds."""
        values = self.front.run(self.front_outputs, {self.input_name: x})
        feeds = {}
        for cut, value in zip(self.split.cuts, values):
            if cut.kind == "real_dft":
                feeds[cut.back] = real_dft(value, self.precision).reshape([len(x)] + cut.attrs["shape"])
            elif cut.kind == "onnx_dft":
                feeds[cut.back] = onnx_dft(value, precision=self.precision, **cut.attrs)
            else:
                feeds[cut.back] = value
        if self.split.passthrough:
            feeds[self.input_name] = x
        return feeds

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.back.run(outputs, feeds)
