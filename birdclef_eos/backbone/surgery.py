"""ONNX graph surgery: find every MBConv block's output and expose it spatially averaged.

Blocks are found by structure: an MBConv block is an optional 1x1 expansion Conv, a depthwise
Conv (group count equal to its channels, one filter per channel), an optional squeeze-excitation
(a 1x1 Conv read from a spatial mean), a 1x1 projection Conv and, where shapes allow, a residual
Add of the block's input. The block's output is the projection (after its per-channel affine,
i.e. BatchNorm as Mul + Add or BatchNormalization, and at most one layout Transpose), or the
residual Add that reads it. Stages change where the width or the spatial size changes. So any
exporter's node names (tf2onnx from a SavedModel, torch, renamed ids) give the same inventory.

Names, where present, only confirm: Perch-style scopes (`.../MBConv_<i>/...`) and BirdNET's Keras
layer names (`model/BLOCK_<s>-<b>_...`) are read as before (a node belongs to the block its name
names first; TFLite joins fused op names with ';'; a block's output is the last node of its
scope whose activation output is read outside it, or an unscoped residual Add reading it).
When names and structure find the same block outputs, the named inventory is kept (rule
`perch` | `birdnet`, numbered as before: a new stage at every block without a residual Add);
when a graph has no depthwise blocks, names alone decide; when they disagree, structure wins
(rule `structure`) and the inventory says where names disagreed.
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
    depthwise: str = ""     # the depthwise Conv's node name (structure rule)
    se: bool = False        # has a squeeze-excitation (structure rule)
    note: str = ""          # where names disagreed with structure (first block only)

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


def named_blocks(model: onnx.ModelProto, live: set) -> tuple[str, list[Block]] | None:
    """(rule name, blocks in order) of the first name rule that finds any block, else None."""
    graph = model.graph
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
    return None


# ---- blocks by structure -------------------------------------------------------------------

PASSIVE = {"Transpose", "Identity", "BatchNormalization", "Cast"}      # one activation in, same values re-laid
AFFINE = {"Mul", "Add", "Sub", "Div"}                                  # with one constant operand: BatchNorm
POOLS = {"GlobalAveragePool", "ReduceMean", "ReduceSum", "GlobalMaxPool", "AveragePool"}
RESHAPES = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity", "Cast"}


@dataclass
class GraphIndex:
    """Producers, consumers, constant shapes and live tensors of a graph, for the structure rule."""
    graph: onnx.GraphProto
    live: set
    producer: dict
    consumers: dict
    dims: dict

    @classmethod
    def of(cls, graph: onnx.GraphProto, live: set) -> "GraphIndex":
        producer = {out: node for node in graph.node for out in node.output}
        consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        dims = {t.name: tuple(t.dims) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        dims[node.output[0]] = tuple(a.t.dims)
        return cls(graph, live, producer, consumers, dims)

    def live_inputs(self, node) -> list[str]:
        return [x for x in node.input if x in self.live]

    def weight(self, conv) -> tuple | None:
        return self.dims.get(conv.input[1]) if len(conv.input) > 1 else None


def attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def is_depthwise(conv, index: GraphIndex) -> bool:
    group = attrs(conv).get("group", 1)
    w = index.weight(conv)
    return group > 1 and (w is None or (len(w) == 4 and w[0] == group and w[1] == 1))


def is_pointwise(conv, index: GraphIndex) -> bool:
    a, w = attrs(conv), index.weight(conv)
    kernel = a.get("kernel_shape") or (list(w[2:]) if w else None)
    return a.get("group", 1) == 1 and kernel is not None and all(k == 1 for k in kernel)


def out_channels(conv, index: GraphIndex) -> int | None:
    w = index.weight(conv)
    return w[0] if w else None


def in_channels(conv, index: GraphIndex) -> int | None:
    w = index.weight(conv)
    return w[1] * attrs(conv).get("group", 1) if w else None


def is_passive(node, index: GraphIndex) -> bool:
    """A node that keeps one activation's values up to a per-channel affine or a re-layout."""
    live = index.live_inputs(node)
    if len(live) != 1 or len(node.output) < 1:
        return False
    return node.op_type in PASSIVE or node.op_type in AFFINE


def root(tensor: str, index: GraphIndex) -> str:
    """``tensor`` followed back through layout-only nodes (Transpose, Identity, Cast, Pad)."""
    while tensor in index.producer:
        node = index.producer[tensor]
        if node.op_type not in ("Transpose", "Identity", "Cast", "Pad") or len(index.live_inputs(node)) != 1:
            break
        tensor = index.live_inputs(node)[0]
    return tensor


def is_pooled(tensor: str, index: GraphIndex) -> bool:
    """Whether ``tensor`` is a spatial mean (possibly reshaped): the input of a squeeze-excitation."""
    while tensor in index.producer:
        node = index.producer[tensor]
        if node.op_type in POOLS:
            return True
        if node.op_type not in RESHAPES or len(index.live_inputs(node)) != 1:
            return False
        tensor = index.live_inputs(node)[0]
    return False


def convs_after(tensor: str, index: GraphIndex) -> list:
    """The Conv nodes reached from ``tensor`` without passing through another Conv (graph order)."""
    order = {id(n): i for i, n in enumerate(index.graph.node)}
    seen, found, todo = set(), {}, [tensor]
    while todo:
        name = todo.pop()
        for node in index.consumers.get(name, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Conv":
                found[id(node)] = node
            else:
                todo.extend(node.output)
    return sorted(found.values(), key=lambda n: order[id(n)])


def convs_before(tensor: str, index: GraphIndex) -> list:
    """The Conv nodes ``tensor`` reads without passing through another Conv."""
    seen, found, todo = set(), {}, [tensor]
    while todo:
        name = todo.pop()
        node = index.producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type == "Conv":
            found[id(node)] = node
        else:
            todo.extend(index.live_inputs(node))
    return list(found.values())


def block_end(project, block_input: str, index: GraphIndex) -> tuple[str, bool]:
    """(output tensor, residual) of the block whose projection Conv is ``project``: through its
    affine and at most one layout Transpose, then the residual Add when it reads the block input."""
    tensor, transposed = project.output[0], False
    while True:
        users = index.consumers.get(tensor, [])
        for node in users:
            if node.op_type == "Add" and len(index.live_inputs(node)) == 2:
                other = next(x for x in node.input if x != tensor)
                if root(other, index) == root(block_input, index):
                    return node.output[0], True
        if len(users) != 1 or not is_passive(users[0], index):
            return tensor, False
        if users[0].op_type == "Transpose":
            if transposed:
                return tensor, False
            transposed = True
        tensor = users[0].output[0]


def structural_blocks(graph: onnx.GraphProto, live: set) -> list[Block]:
    """Every MBConv block recognised by its structure, in graph order (see the module docstring)."""
    index = GraphIndex.of(graph, live)
    projections: set[int] = set()
    blocks = []
    for node in graph.node:
        if node.op_type != "Conv" or node.input[0] not in live or not is_depthwise(node, index):
            continue
        mid = attrs(node)["group"]
        after = convs_after(node.output[0], index)
        se = [c for c in after if is_pooled(c.input[0], index)]
        project = [c for c in after if c not in se and is_pointwise(c, index) and in_channels(c, index) in (mid, None)]
        if len(project) != 1:
            continue  # a depthwise Conv that is not the middle of an MBConv block
        before = [c for c in convs_before(node.input[0], index) if id(c) not in projections]
        expand = [c for c in before if is_pointwise(c, index) and out_channels(c, index) in (mid, None)]
        block_input = expand[0].input[0] if len(expand) == 1 and len(before) == 1 else node.input[0]
        projections.add(id(project[0]))
        out, residual = block_end(project[0], block_input, index)
        blocks.append(Block(scope=f"depthwise:{node.name or node.output[0]}", tensor=out, residual=residual,
                            conv_tensor=project[0].output[0], depthwise=node.name, se=bool(se)))
    return blocks


def find_blocks(model: onnx.ModelProto) -> tuple[str, list[Block]]:
    """(rule, blocks in order): the structure rule, confirmed (and named) by a name rule where
    one applies; see the module docstring."""
    graph = model.graph
    live = activation_tensors(graph)
    structure = structural_blocks(graph, live)
    named = named_blocks(model, live)
    if named is not None:
        rule, by_name = named
        index = GraphIndex.of(graph, live)
        same = [root(b.tensor, index) for b in by_name] == [root(b.tensor, index) for b in structure]
        if not structure or same:  # the same tensors up to a layout Transpose: names confirm
            return rule, by_name
        for block in structure:  # names disagree: keep the scope a name gives the depthwise Conv
            scope = scope_of(block.depthwise, SCOPE_RULES[rule])
            block.scope = scope or block.scope
        disagree = sorted(set(b.tensor for b in by_name) ^ set(b.tensor for b in structure))
        structure[0].note = (f"{rule} names found {len(by_name)} blocks, structure {len(structure)}; "
                             f"tensors found by one only: {disagree[:6]}")
        return "structure", structure
    if structure:
        return "structure", structure
    examples = [n.name for n in graph.node[:5]]
    raise SurgeryError(
        "no MBConv blocks found: no depthwise Conv (group = channels) between 1x1 Convs, and no node name "
        "matches " + " or ".join(r.pattern for r in SCOPE_RULES.values())
        + f" (blocks found: none; first node names: {examples})")


def number_blocks(blocks: list[Block]) -> None:
    """Named rules: a new stage at every block without a residual Add."""
    stage = 0
    for i, block in enumerate(blocks):
        block.index = i
        if i == 0 or not block.residual:
            stage += 1
        block.stage = stage


def number_stages_by_shape(blocks: list[Block]) -> None:
    """Structure rule: a new stage where the width or the spatial size changes."""
    stage, previous = 0, None
    for block in blocks:
        shape = (block.channels, tuple(block.spatial))
        if shape != previous:
            stage += 1
        block.stage, previous = stage, shape


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
    if rule == "structure":
        number_stages_by_shape(blocks)
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
    if blocks[0].note:
        inventory["names_disagree"] = blocks[0].note
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
