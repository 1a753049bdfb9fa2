"""ONNX graph surgery: find every MBConv block's output and expose it spatially averaged.

One rule set serves Perch-style scopes (`.../MBConv_<i>/...`) and BirdNET's Keras layer names
(`model/BLOCK_<s>-<b>_...`). A node belongs to the block its name names first (TFLite joins fused
op names with ';', and the first is the op's own). A block's output is the last node of its scope,
in graph order, whose activation output is read outside the scope: the residual Add, or the
projection (conv + BatchNorm) for the first block of a stage, which has no residual Add. If an
exporter left a block's residual Add outside its scope, the Add that reads the projection and an
earlier block's output is taken instead.
Stages are numbered from 1 and a new one starts at every block without a residual Add.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

SCOPE_RULES = {
    "perch": re.compile(r"(?:^|/)MBConv_(\d+)/"),
    "birdnet": re.compile(r"(?:^|/)BLOCK_(\d+)-(\d+)_"),
}
BLOCK_OUTPUT = re.compile(r"^block_\d\d$")
UNCHANGED_TOLERANCE = 1e-5  # relative to the output's largest magnitude


class SurgeryError(RuntimeError):
    pass


@dataclass
class Block:
    scope: str          # "MBConv_21" or "BLOCK_3-2"
    tensor: str         # the block's output tensor in the original graph
    residual: bool      # ends in a residual Add
    conv_tensor: str    # the block's last Conv output (NCHW by definition): tells the layout
    index: int = -1
    stage: int = 0
    channels: int = 0
    spatial: tuple = ()
    layout: str = ""

    @property
    def name(self) -> str:
        return f"block_{self.index:02d}"


def strip_probes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove earlier `block_<ii>` outputs and the nodes that make them (so surgery is idempotent),
    and all value_info (stale entries break shape inference)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    probes = {o.name for o in graph.output if BLOCK_OUTPUT.match(o.name)}
    keep_nodes = [n for n in graph.node if not set(n.output) & probes]
    keep_outputs = [o for o in graph.output if o.name not in probes]
    del graph.node[:]
    graph.node.extend(keep_nodes)
    del graph.output[:]
    graph.output.extend(keep_outputs)
    del graph.value_info[:]
    return model


def activation_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors that depend on a graph input (not constants or weights)."""
    weights = {init.name for init in graph.initializer}
    live = {i.name for i in graph.input if i.name not in weights}
    for node in graph.node:
        if any(name in live for name in node.input):
            live.update(node.output)
    return live


def scope_of(node_name: str, rule: re.Pattern) -> str | None:
    match = rule.search(node_name)
    if not match:
        return None
    return "MBConv_" + match.group(1) if match.lastindex == 1 else f"BLOCK_{match.group(1)}-{match.group(2)}"


def scope_sort_key(scope: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", scope))


def scope_exits(graph: onnx.GraphProto, scopes: list, live: set) -> dict[str, tuple[onnx.NodeProto, str]]:
    """Per scope: the last node (in graph order) with an activation output read outside the scope."""
    consumers: dict[str, set] = {}
    for node, scope in zip(graph.node, scopes):
        for name in node.input:
            consumers.setdefault(name, set()).add(scope)
    graph_outputs = {o.name for o in graph.output}
    exits = {}
    for node, scope in zip(graph.node, scopes):
        for out in node.output:
            if scope is not None and out in live and (consumers.get(out, set()) - {scope} or out in graph_outputs):
                exits[scope] = (node, out)
    return exits


def unscoped_residual(tensor: str, scope: str, graph: onnx.GraphProto, scopes: list, live: set):
    """The residual Add that reads ``tensor`` when the exporter left it outside the block's scope
    (its other input comes from an earlier block or the stem, never from a later block), else None."""
    producer = {out: sc for node, sc in zip(graph.node, scopes) for out in node.output}
    found = []
    for node, sc in zip(graph.node, scopes):
        if sc is None and node.op_type == "Add" and tensor in node.input and all(i in live for i in node.input):
            others = [producer.get(i) for i in node.input if i != tensor]
            if all(o is None or scope_sort_key(o) < scope_sort_key(scope) for o in others):
                found.append(node)
    return found[0] if len(found) == 1 else None


def find_blocks(model: onnx.ModelProto) -> tuple[str, list[Block]]:
    """(rule name, blocks in order) of the first rule set that finds any block."""
    graph = model.graph
    live = activation_tensors(graph)
    for rule_name, rule in SCOPE_RULES.items():
        scopes = [scope_of(n.name, rule) for n in graph.node]
        if not any(scopes):
            continue
        convs = {sc: n.output[0] for n, sc in zip(graph.node, scopes) if sc is not None and n.op_type == "Conv"}
        exits = scope_exits(graph, scopes, live)
        blocks = []
        for scope in sorted(exits, key=scope_sort_key):
            node, out = exits[scope]
            residual = node.op_type == "Add" and all(i in live for i in node.input)
            if not residual:
                add = unscoped_residual(out, scope, graph, scopes, live)
                if add is not None:
                    out, residual = add.output[0], True
            if scope not in convs:
                raise SurgeryError(f"block {scope}: no Conv node in its scope, cannot tell its channel axis")
            blocks.append(Block(scope=scope, tensor=out, residual=residual, conv_tensor=convs[scope]))
        return rule_name, blocks
    examples = [n.name for n in graph.node[:5]]
    raise SurgeryError(
        "no MBConv blocks found: no node name matches "
        + " or ".join(r.pattern for r in SCOPE_RULES.values())
        + f" (blocks found: none; first node names: {examples})")


def number_blocks(blocks: list[Block]) -> None:
    stage = 0
    for i, block in enumerate(blocks):
        block.index = i
        if i == 0 or not block.residual:
            stage += 1
        block.stage = stage


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns ``names`` (types left open, for a probing run)."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    return probe


def concrete_shapes(model: onnx.ModelProto, names: list[str], window_samples: int) -> dict[str, tuple]:
    """Shapes of ``names`` from one onnxruntime run on a fixed noise window (batch 1)."""
    import onnxruntime as ort

    probe = with_outputs(model, names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal((1, window_samples)).astype(np.float32) * 0.1
    values = session.run(names, {inp.name: x})
    return {name: tuple(v.shape) for name, v in zip(names, values)}


def measure_blocks(blocks: list[Block], shapes: dict[str, tuple]) -> None:
    """Channels, spatial size and layout of each block from its concrete shape and its last Conv's."""
    for block in blocks:
        shape, conv = shapes[block.tensor], shapes[block.conv_tensor]
        if len(shape) != 4 or len(conv) != 4:
            raise SurgeryError(f"block {block.scope}: output {block.tensor!r} has shape {shape}, expected 4-D")
        _, c, h, w = conv
        if shape[1:] == (c, h, w):
            block.layout, block.channels, block.spatial = "NCHW", shape[1], (shape[2], shape[3])
        elif shape[3] == c:
            block.layout, block.channels, block.spatial = "NHWC", shape[3], (shape[1], shape[2])
        else:
            raise SurgeryError(f"block {block.scope}: output {block.tensor!r} {shape} matches neither "
                               f"NCHW nor NHWC of its last Conv output {conv}")


def requested_blocks(blocks: list[Block], requested) -> list[Block]:
    if requested in (None, "all"):
        return blocks
    by_index = {b.index: b for b in blocks}
    missing = [i for i in requested if i not in by_index]
    if missing:
        found = ", ".join(f"{b.index} ({b.scope})" for b in blocks)
        raise SurgeryError(f"requested block(s) {missing} do not exist; blocks found: {found}")
    return [by_index[i] for i in sorted(set(requested))]


def batch_dim(model: onnx.ModelProto) -> onnx.TensorShapeProto.Dimension:
    return model.graph.input[0].type.tensor_type.shape.dim[0]


def output_info(name: str, batch: onnx.TensorShapeProto.Dimension, width: int) -> onnx.ValueInfoProto:
    info = helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, width])
    info.type.tensor_type.shape.dim[0].CopyFrom(batch)
    return info


def append_pooled_outputs(model: onnx.ModelProto, blocks: list[Block]) -> None:
    """One ReduceMean over the spatial axes per block (opset 17: axes is an attribute)."""
    batch = batch_dim(model)
    for block in blocks:
        axes = [2, 3] if block.layout == "NCHW" else [1, 2]
        model.graph.node.append(helper.make_node(
            "ReduceMean", [block.tensor], [block.name], name=f"{block.name}/ReduceMean", axes=axes, keepdims=0))
        model.graph.output.append(output_info(block.name, batch, block.channels))


def expose_tensor(model: onnx.ModelProto, name: str, shape: tuple) -> None:
    if name in {o.name for o in model.graph.output}:
        return
    if len(shape) != 2:
        raise SurgeryError(f"embedding tensor {name!r} has shape {shape}, expected [B, E]")
    model.graph.output.append(output_info(name, batch_dim(model), shape[1]))


def expose_blocks(model: onnx.ModelProto, window_samples: int, embedding: str | None = None,
                 requested=None) -> tuple[onnx.ModelProto, dict]:
    """The probed model (original outputs first, unchanged; then the embedding if it was internal;
    then `block_<ii>`) and the inventory {"rule", "blocks": [...], "n_found"}."""
    model = strip_probes(model)
    rule, blocks = find_blocks(model)
    number_blocks(blocks)
    names = [b.tensor for b in blocks] + [b.conv_tensor for b in blocks] + ([embedding] if embedding else [])
    known = {n for node in model.graph.node for n in node.output}
    if embedding and embedding not in known and embedding not in {i.name for i in model.graph.input}:
        raise SurgeryError(f"embedding tensor {embedding!r} is not in the graph")
    shapes = concrete_shapes(model, names, window_samples)
    measure_blocks(blocks, shapes)
    chosen = requested_blocks(blocks, requested)
    if embedding:
        expose_tensor(model, embedding, shapes[embedding])
    append_pooled_outputs(model, chosen)
    onnx.checker.check_model(model, full_check=True)
    inventory = {
        "rule": rule,
        "n_found": len(blocks),
        "layout": blocks[0].layout,
        "blocks": [{"index": b.index, "name": b.name, "scope": b.scope, "tensor": b.tensor, "stage": b.stage,
                    "residual": b.residual, "channels": int(b.channels), "spatial": [int(s) for s in b.spatial]}
                   for b in chosen],
    }
    if embedding:
        inventory["embedding_channels"] = int(shapes[embedding][1])
    return model, inventory


def run_outputs(model: onnx.ModelProto, window_samples: int, batch: int = 2) -> dict[str, np.ndarray]:
    """Every graph output of ``model`` on a fixed, seeded noise batch (peak 0.25)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((batch, window_samples)).astype(np.float32)
    x = 0.25 * x / np.abs(x).max(axis=1, keepdims=True)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: x})))


def compare_outputs(original: onnx.ModelProto, probed: onnx.ModelProto, window_samples: int) -> dict:
    """Max abs difference of each original output between the two graphs, and whether every probed
    output is finite. Raises if an original output changed or went missing."""
    before, after = run_outputs(original, window_samples), run_outputs(probed, window_samples)
    diffs = {}
    for name, value in before.items():
        if name not in after:
            raise SurgeryError(f"surgery dropped the original output {name!r}")
        diffs[name] = float(np.max(np.abs(value - after[name]))) if value.size else 0.0
        # ORT may fuse differently once a block tensor is an output: allow float rounding only
        if diffs[name] > UNCHANGED_TOLERANCE * max(1.0, float(np.max(np.abs(value))) if value.size else 1.0):
            raise SurgeryError(f"surgery changed the original output {name!r} (max abs diff {diffs[name]:g})")
    bad = [name for name, value in after.items() if not np.all(np.isfinite(value))]
    if bad:
        raise SurgeryError(f"probed outputs with NaN or infinite values: {bad}")
    return {"max_abs_diff": diffs, "shapes": {name: list(v.shape) for name, v in after.items()}}
