"""The backbone's second GPU route: the probed ONNX graph run by PyTorch instead of onnxruntime.

Many GPU machines have PyTorch with CUDA but not onnxruntime's CUDA build (a separate, large
package). `TorchSession(model, device)` converts the graph once (its initializers become torch
tensors on ``device``) and evaluates its nodes in graph order with torch functions; it answers the
two calls the runner makes of an onnxruntime session (`run(output_names, feeds)`,
`get_outputs()`), so `Backbone` and the frontend cut use it unchanged (``runtime.provider:
torch-cuda``, or ``torch-cpu`` where no GPU is present; frontend.py `make_session`).

A small converter of our own rather than onnx2torch: onnx2torch 1.5.15 imports torchvision (not
in this environment; a second CUDA-matched wheel on a GPU box) and has no ``ReverseSequence``,
which BirdNET's converted graph uses. The operator set below is exactly what the perch_tiny
fixture, Perch v2's probed graph shape and BirdNET's converted graph (opset 17) use; any other
operator raises naming it, before a single window runs.

Numerics: float32 stays float32 (float64 nodes, such as BirdNET's in-graph DFT, stay float64), but
kernels differ from onnxruntime's, so features agree to a tolerance, not byte for byte
(tests/birdclef_eos/backbone/test_torch_route.py states it). Only the CPU device has been
tested here; no GPU was available when this was written (docs/scaling.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

DEVICES = ("cpu", "cuda")


class TorchRouteError(RuntimeError):
    pass


@dataclass
class OutputInfo:
    """What `get_outputs()` lists: an output's name and its declared shape (ints, or str/None for free dims)."""
    name: str
    shape: list


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _same_pads(size: list[int], kernel: list[int], strides: list[int], dilations: list[int],
               upper: bool) -> list[int]:
    """ONNX auto_pad SAME_UPPER/SAME_LOWER as explicit pads [b1, b2, ..., e1, e2, ...]."""
    begins, ends = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begins.append(small if upper else big)
        ends.append(big if upper else small)
    return begins + ends


def _torch_pad(pads: list[int]) -> list[int]:
    """ONNX [b1..bn, e1..en] over the last n dims -> torch F.pad's (bn, en, ..., b1, e1)."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [int(pads[i]), int(pads[i + n])]
    return out


class TorchSession:
    """An ONNX graph evaluated by torch on ``device``; the subset of onnxruntime's session API the
    backbone runner uses. ``threads`` sets torch's intra-op threads on the CPU (process-wide)."""

    def __init__(self, model, device: str = "cpu", threads: int | None = None):
        import torch

        self.torch = torch
        if device not in DEVICES:
            raise TorchRouteError(f"unknown torch device {device!r}; expected one of {DEVICES}")
        if device == "cuda" and not torch.cuda.is_available():
            raise TorchRouteError("runtime.provider torch-cuda: this PyTorch sees no CUDA device "
                                  f"(torch {torch.__version__}); set provider: torch-cpu or cpu")
        if device == "cpu" and threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        graph = self.model.graph
        missing = sorted({n.op_type for n in graph.node if n.domain not in ("", "ai.onnx")}
                         | {n.op_type for n in graph.node if n.domain in ("", "ai.onnx")
                            and not hasattr(self, "op_" + n.op_type)})
        if missing:
            raise TorchRouteError(f"the torch route cannot run operators {missing} of graph "
                                  f"{graph.name!r}; use provider cpu or cuda (onnxruntime)")
        self.weights = {t.name: self._tensor(numpy_helper.to_array(t)) for t in graph.initializer}
        self.nodes = list(graph.node)
        for node in self.nodes:   # constants once, on the device
            if node.op_type == "Constant":
                self.weights[node.output[0]] = self.op_Constant(node, [], _attrs(node))[0]
        self.nodes = [n for n in self.nodes if n.op_type != "Constant"]
        self.attrs = [_attrs(n) for n in self.nodes]
        self._inputs = [i.name for i in graph.input if i.name not in self.weights]
        self._outputs = [OutputInfo(o.name, [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                             for d in o.type.tensor_type.shape.dim]) for o in graph.output]

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.array(array, copy=True, order="C")).to(self.device)  # keeps 0-d

    def get_outputs(self) -> list[OutputInfo]:
        return list(self._outputs)

    def get_inputs(self) -> list[OutputInfo]:
        return [OutputInfo(name, []) for name in self._inputs]

    def run(self, output_names, feeds: dict) -> list[np.ndarray]:
        """Like onnxruntime's: the named outputs (None = all) for ``feeds`` (name -> numpy array)."""
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        unknown = set(feeds) - set(self._inputs)
        if unknown:
            raise TorchRouteError(f"feeds {sorted(unknown)} are not inputs of the graph; it takes {self._inputs}")
        # only the nodes the wanted outputs depend on
        needed, keep = set(names), []
        for node in reversed(self.nodes):
            if needed & set(node.output):
                keep.append(node)
                needed |= {x for x in node.input if x}
        keep_ids = {id(n) for n in keep}
        values = dict(self.weights)
        with self.torch.inference_mode():
            for name, value in feeds.items():
                values[name] = self._tensor(np.asarray(value))
            for node, attrs in zip(self.nodes, self.attrs):
                if id(node) not in keep_ids:
                    continue
                args = [values[x] if x else None for x in node.input]
                try:
                    outs = getattr(self, "op_" + node.op_type)(node, args, attrs)
                except Exception as exc:  # name the node: the graph is the user's file
                    raise TorchRouteError(f"torch route: node {node.name!r} ({node.op_type}) failed: {exc}") from exc
                for name, value in zip(node.output, outs):
                    if name:
                        values[name] = value
            missing = [n for n in names if n not in values]
            if missing:
                raise TorchRouteError(f"outputs {missing} are not produced by the graph")
            return [values[n].detach().cpu().numpy() for n in names]

    # --- operators (opset 17 semantics); each returns a list of outputs -----------------------
    DTYPES = {1: "float32", 6: "int32", 7: "int64", 9: "bool", 11: "float64"}

    def op_Constant(self, node, args, a):
        if "value" not in a:
            raise TorchRouteError(f"Constant {node.name!r}: only the `value` attribute is supported")
        return [self._tensor(numpy_helper.to_array(a["value"]))]

    def op_Identity(self, node, args, a):
        return [args[0]]

    def op_Add(self, node, args, a):
        return [args[0] + args[1]]

    def op_Sub(self, node, args, a):
        return [args[0] - args[1]]

    def op_Mul(self, node, args, a):
        return [args[0] * args[1]]

    def op_Div(self, node, args, a):
        if args[0].is_floating_point():
            return [args[0] / args[1]]
        return [self.torch.div(args[0], args[1], rounding_mode="trunc")]

    def op_Pow(self, node, args, a):
        return [self.torch.pow(args[0], args[1].to(args[0].dtype) if args[1].is_floating_point() else args[1])]

    def op_Max(self, node, args, a):
        out = args[0]
        for x in args[1:]:
            out = self.torch.maximum(out, x)
        return [out]

    def op_Sigmoid(self, node, args, a):
        return [self.torch.sigmoid(args[0])]

    def op_Relu(self, node, args, a):
        return [self.torch.relu(args[0])]

    def op_Log(self, node, args, a):
        return [self.torch.log(args[0])]

    def op_Cast(self, node, args, a):
        if a["to"] not in self.DTYPES:
            raise TorchRouteError(f"Cast to ONNX type {a['to']} is not supported")
        return [args[0].to(getattr(self.torch, self.DTYPES[a["to"]]))]

    def op_MatMul(self, node, args, a):
        return [self.torch.matmul(args[0], args[1])]

    def op_Gemm(self, node, args, a):
        x, w = args[0], args[1]
        if a.get("transA", 0):
            x = x.t()
        if a.get("transB", 0):
            w = w.t()
        out = a.get("alpha", 1.0) * (x @ w)
        if len(args) > 2 and args[2] is not None:
            out = out + a.get("beta", 1.0) * args[2]
        return [out]

    def _pool_pads(self, x, a, kernel):
        n = len(kernel)
        strides = a.get("strides", [1] * n)
        dilations = a.get("dilations", [1] * n)
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return _same_pads(list(x.shape[2:]), kernel, strides, dilations, auto == "SAME_UPPER")
        if auto not in ("NOTSET", "VALID"):
            raise TorchRouteError(f"auto_pad {auto!r} is not supported")
        return list(a.get("pads", [0] * 2 * n)) if auto == "NOTSET" else [0] * 2 * n

    def op_Conv(self, node, args, a):
        F = self.torch.nn.functional
        x, w = args[0], args[1]
        b = args[2] if len(args) > 2 else None
        kernel = list(a.get("kernel_shape", w.shape[2:]))
        n = len(kernel)
        pads = self._pool_pads(x, a, kernel)
        padding = pads[:n]
        if pads[:n] != pads[n:]:
            x, padding = F.pad(x, _torch_pad(pads)), [0] * n
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
        return [conv(x, w, b, stride=a.get("strides", [1] * n), padding=padding,
                     dilation=a.get("dilations", [1] * n), groups=a.get("group", 1))]

    def _pool(self, x, a, kind):
        F = self.torch.nn.functional
        kernel = list(a["kernel_shape"])
        n = len(kernel)
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1] * n)):
            raise TorchRouteError("pooling with ceil_mode or dilations is not supported")
        pads = self._pool_pads(x, a, kernel)
        strides = a.get("strides", [1] * n)
        if any(pads):
            if kind == "avg" and not a.get("count_include_pad", 0):
                # padded cells do not count: sum / count of real cells
                ones = self.torch.ones_like(x[:1, :1])
                total = F.avg_pool2d(F.pad(x, _torch_pad(pads)), kernel, strides) if n == 2 else None
                count = F.avg_pool2d(F.pad(ones, _torch_pad(pads)), kernel, strides) if n == 2 else None
                if total is None:
                    raise TorchRouteError("padded average pooling is supported in 2-D only")
                return total / count
            x = F.pad(x, _torch_pad(pads), value=-math.inf if kind == "max" else 0.0)
        pool = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d,
                ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d}.get((kind, n))
        if pool is None:
            raise TorchRouteError(f"{n}-D {kind} pooling is not supported")
        return pool(x, kernel, strides)

    def op_MaxPool(self, node, args, a):
        if len(node.output) > 1 and node.output[1]:
            raise TorchRouteError("MaxPool's Indices output is not supported")
        return [self._pool(args[0], a, "max")]

    def op_AveragePool(self, node, args, a):
        return [self._pool(args[0], a, "avg")]

    def op_GlobalAveragePool(self, node, args, a):
        return [args[0].mean(dim=tuple(range(2, args[0].dim())), keepdim=True)]

    def _reduce(self, args, a, fn):
        x = args[0]
        axes = a.get("axes")
        if axes is None and len(args) > 1 and args[1] is not None:
            axes = [int(v) for v in args[1].tolist()]
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.dim()))
        return [fn(x, axes, keep)]

    def op_ReduceMean(self, node, args, a):
        return self._reduce(args, a, lambda x, ax, k: x.mean(dim=tuple(ax), keepdim=k))

    def op_ReduceMax(self, node, args, a):
        return self._reduce(args, a, lambda x, ax, k: self.torch.amax(x, dim=tuple(ax), keepdim=k))

    def op_ReduceMin(self, node, args, a):
        return self._reduce(args, a, lambda x, ax, k: self.torch.amin(x, dim=tuple(ax), keepdim=k))

    def op_Transpose(self, node, args, a):
        perm = a.get("perm", list(reversed(range(args[0].dim()))))
        return [args[0].permute(*perm)]

    def op_Shape(self, node, args, a):
        shape = list(args[0].shape)[a.get("start", 0):a.get("end", None)]
        return [self.torch.tensor(shape, dtype=self.torch.int64, device=self.device)]

    def op_Gather(self, node, args, a):
        x, idx = args[0], args[1].long()
        axis = a.get("axis", 0) % x.dim()
        idx = self.torch.where(idx < 0, idx + x.shape[axis], idx)
        out = self.torch.index_select(x, axis, idx.reshape(-1))
        return [out.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))]

    def op_Concat(self, node, args, a):
        return [self.torch.cat([x for x in args if x is not None], dim=a["axis"])]

    def op_Reshape(self, node, args, a):
        x = args[0]
        shape = [int(v) for v in args[1].tolist()]
        if not a.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [x.reshape(shape)]

    def op_Unsqueeze(self, node, args, a):
        x = args[0]
        axes = sorted(int(v) % (x.dim() + len(args[1])) for v in args[1].reshape(-1).tolist())
        for ax in axes:
            x = x.unsqueeze(ax)
        return [x]

    def op_Squeeze(self, node, args, a):
        x = args[0]
        if len(args) < 2 or args[1] is None:
            return [x.squeeze()]
        axes = sorted((int(v) % x.dim() for v in args[1].reshape(-1).tolist()), reverse=True)
        for ax in axes:
            x = x.squeeze(ax)
        return [x]

    def op_Split(self, node, args, a):
        x = args[0]
        axis = a.get("axis", 0)
        if len(args) > 1 and args[1] is not None:
            sizes = [int(v) for v in args[1].tolist()]
        else:
            n = len(node.output)
            sizes = [x.shape[axis] // n] * n
        return list(self.torch.split(x, sizes, dim=axis))

    def op_Slice(self, node, args, a):
        x = args[0]
        starts, ends = args[1].tolist(), args[2].tolist()
        axes = args[3].tolist() if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = args[4].tolist() if len(args) > 4 and args[4] is not None else [1] * len(starts)
        index = [slice(None)] * x.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps):
            ax %= x.dim()
            n = x.shape[ax]
            if st > 0:
                s = min(max(s + n if s < 0 else s, 0), n)
                e = min(max(e + n if e < 0 else e, 0), n)
                index[ax] = slice(s, e, st)
            else:  # negative step: torch slices need positive steps; take the range then flip it
                s = min(max(s + n if s < 0 else s, -1), n - 1)
                e = min(max(e + n if e < 0 else e, -1), n - 1)
                idx = list(range(s, e, st))
                x = self.torch.index_select(x, ax, self.torch.tensor(idx, dtype=self.torch.long,
                                                                       device=self.device))
        return [x[tuple(index)]]

    def op_Pad(self, node, args, a):
        F = self.torch.nn.functional
        x, pads = args[0], [int(v) for v in args[1].tolist()]
        value = float(args[2].item()) if len(args) > 2 and args[2] is not None else 0.0
        if len(args) > 3 and args[3] is not None:
            raise TorchRouteError("Pad with an axes input is not supported")
        mode = a.get("mode", "constant")
        if mode != "constant":
            raise TorchRouteError(f"Pad mode {mode!r} is not supported")
        return [F.pad(x, _torch_pad(pads), value=value)]

    def op_Range(self, node, args, a):
        start, limit, delta = (v.item() for v in args[:3])
        return [self.torch.arange(start, limit, delta, dtype=args[0].dtype, device=self.device)]

    def op_Expand(self, node, args, a):
        x, shape = args[0], [int(v) for v in args[1].tolist()]
        # ONNX Expand broadcasts both ways (a 1 in `shape` keeps x's dim)
        dims = max(x.dim(), len(shape))
        xs = [1] * (dims - x.dim()) + list(x.shape)
        shape = [1] * (dims - len(shape)) + shape
        target = [max(p, q) if 1 in (p, q) else q for p, q in zip(xs, shape)]
        return [x.reshape(xs).expand(target)]

    def op_ReverseSequence(self, node, args, a):
        x, lens = args[0], [int(v) for v in args[1].tolist()]
        batch_axis, time_axis = a.get("batch_axis", 1), a.get("time_axis", 0)
        out = x.clone()
        for b, n in enumerate(lens):
            index = [slice(None)] * x.dim()
            index[batch_axis] = b
            index[time_axis] = slice(0, n)
            part = x[tuple(index)]
            t = time_axis if time_axis < batch_axis else time_axis - 1
            out[tuple(index)] = self.torch.flip(part, dims=[t])
        return [out]
