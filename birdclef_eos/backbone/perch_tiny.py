"""A Perch-v2-shaped ONNX fixture, generated from a seed (for tests and CI).

Perch v2's interface and body topology at a reduced width: input `inputs` [B, 160000] (5 s at
32 kHz), a log-mel frontend giving [B, 500, 128], an EfficientNet-B3 body of 26 MBConv blocks in 7
stages [2, 3, 3, 5, 5, 6, 2], a 1x1 head conv, and the outputs `label`, `embedding`,
`spatial_embedding` [B, 16, 4, E] and `spectrogram`. Like Perch's ONNX (a TensorFlow export), block
outputs are channels-last [B, time, freq, C], BatchNorm appears as Mul + Add, and node names carry
the scopes `/MBConv_<i>/...` and `/Head_0/...` (torch names exported nodes after module attributes).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from birdclef_eos.backbone.registry import BACKBONES, runtime_versions

SPEC = BACKBONES["perch_tiny"]
SAMPLE_RATE = SPEC.sample_rate
WINDOW_SAMPLES = SPEC.window_samples
FRAME = 320                     # 10 ms hop and window: 160000 / 320 = 500 frames
N_MELS = 128
F_MIN, F_MAX = 60.0, 16_000.0
STAGE_REPEATS = (2, 3, 3, 5, 5, 6, 2)
STAGE_WIDTHS = (24, 32, 48, 96, 136, 232, 384)
STAGE_KERNELS = (3, 3, 5, 3, 5, 5, 3)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STAGE_EXPAND = (1, 6, 6, 6, 6, 6, 6)
STEM_WIDTH, HEAD_WIDTH = 40, 1536
CALIBRATION_BATCHES = 4


def mel_filterbank(n_bins: int, sample_rate: int, n_mels: int = N_MELS) -> np.ndarray:
    """[n_bins, n_mels] triangular filters, mel-spaced from F_MIN to F_MAX; each filter is at
    least two bins wide so no band is empty at the low end."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    centers = hz(np.linspace(mel(F_MIN), mel(F_MAX), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2, n_bins)
    spacing = freqs[1]
    fb = np.zeros((n_bins, n_mels))
    for m in range(n_mels):
        lo = min(centers[m], centers[m + 1] - spacing)
        hi = max(centers[m + 2], centers[m + 1] + spacing)
        up = (freqs - lo) / (centers[m + 1] - lo)
        down = (hi - freqs) / (hi - centers[m + 1])
        fb[:, m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb.astype(np.float32)


class LogMel(nn.Module):
    """Hann-windowed real DFT as two matmuls, power, mel filterbank, log: [B, 160000] -> [B, 500, 128]."""

    def __init__(self):
        super().__init__()
        n = np.arange(FRAME)
        k = np.arange(FRAME // 2 + 1)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME)
        angle = 2 * np.pi * np.outer(n, k) / FRAME
        self.register_buffer("cos", torch.tensor((window[:, None] * np.cos(angle)).astype(np.float32)))
        self.register_buffer("sin", torch.tensor((window[:, None] * np.sin(angle)).astype(np.float32)))
        self.register_buffer("mel", torch.tensor(mel_filterbank(len(k), SAMPLE_RATE)))

    def forward(self, x):
        frames = x.reshape(x.shape[0], -1, FRAME)
        power = (frames @ self.cos) ** 2 + (frames @ self.sin) ** 2
        return torch.log(power @ self.mel + 1e-6)


class Affine(nn.Module):
    """BatchNorm in training mode for calibration; folded into a per-channel Mul + Add for export."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, momentum=None)  # momentum None: plain average over calibration batches
        self.scale = None
        self.shift = None

    def fold(self):
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        # rounded to half precision so the exported bytes do not hinge on the last float bit
        self.scale = nn.Parameter(scale.detach().half().float().reshape(1, -1, 1, 1))
        self.shift = nn.Parameter(shift.detach().half().float().reshape(1, -1, 1, 1))
        self.bn = None

    def forward(self, x):
        return self.bn(x) if self.bn is not None else x * self.scale + self.shift


class ConvAffine(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.norm = Affine(c_out)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        gate = torch.sigmoid(self.expand(nn.functional.silu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * gate


class MBConv(nn.Module):
    """Channels-last in and out (like Perch's block tensors); residual add unless the block
    changes width or resolution (the first block of a stage)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.ExpandConv = ConvAffine(c_in, mid) if expand != 1 else nn.Identity()
        self.DepthwiseConv = ConvAffine(mid, mid, kernel, stride, groups=mid)
        self.SqueezeExcite = SqueezeExcite(mid, max(1, c_in // 4))
        self.ProjectConv = ConvAffine(mid, c_out, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        h = x.permute(0, 3, 1, 2)
        h = self.ProjectConv(self.SqueezeExcite(self.DepthwiseConv(self.ExpandConv(h))))
        h = h.permute(0, 2, 3, 1)
        return h + x if self.residual else h


class PerchTiny(nn.Module):
    def __init__(self, width_multiplier: float, n_classes: int):
        super().__init__()
        scale = lambda w: max(4, int(round(w * width_multiplier)))
        self.frontend = LogMel()
        self.Stem_0 = ConvAffine(1, scale(STEM_WIDTH), 3, 2)
        c_in, i = scale(STEM_WIDTH), 0
        for repeats, width, kernel, stride, expand in zip(
                STAGE_REPEATS, STAGE_WIDTHS, STAGE_KERNELS, STAGE_STRIDES, STAGE_EXPAND):
            for r in range(repeats):
                block = MBConv(c_in, scale(width), kernel, stride if r == 0 else 1, expand)
                setattr(self, f"MBConv_{i}", block)  # the attribute name becomes the ONNX scope
                c_in, i = scale(width), i + 1
        self.n_blocks = i
        self.Head_0 = ConvAffine(c_in, scale(HEAD_WIDTH))
        self.Classifier_0 = nn.Linear(scale(HEAD_WIDTH), n_classes)

    def forward(self, inputs):
        spectrogram = self.frontend(inputs)
        h = self.Stem_0(spectrogram.unsqueeze(1)).permute(0, 2, 3, 1)
        for i in range(self.n_blocks):
            h = getattr(self, f"MBConv_{i}")(h)
        spatial = self.Head_0(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        embedding = spatial.mean((1, 2))
        return self.Classifier_0(embedding), embedding, spatial, spectrogram


def reinitialise(model: nn.Module, generator: torch.Generator) -> None:
    """He-normal convs and small linear weights: default init makes features vanish stage by stage."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Linear):
            module.weight.data = torch.randn(module.weight.shape, generator=generator) / module.in_features ** 0.5
            module.bias.data.zero_()


def calibration_audio(generator: torch.Generator, batches: int = CALIBRATION_BATCHES) -> list[torch.Tensor]:
    """Noise at a few loudness levels, some with chirp-like tones, peak-normalised like Perch's input."""
    t = torch.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    out = []
    for _ in range(batches):
        noise = torch.randn((4, WINDOW_SAMPLES), generator=generator) * torch.rand((4, 1), generator=generator)
        f0 = 1000 + 6000 * torch.rand((4, 1), generator=generator)
        tone = torch.sin(2 * np.pi * (f0 * t + 300 * t ** 2)) * (torch.rand((4, 1), generator=generator) > 0.5)
        x = noise + tone
        x = x - x.mean(1, keepdim=True)
        out.append(0.25 * x / x.abs().amax(1, keepdim=True))
    return out


def calibrate(model: PerchTiny, generator: torch.Generator) -> None:
    """Gather BatchNorm statistics on noise (train mode), then fold them into Mul + Add."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same reduction order on every machine
    try:
        model.train()
        with torch.no_grad():
            for batch in calibration_audio(generator):
                model(batch)
        for module in model.modules():
            if isinstance(module, Affine):
                module.fold()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def build_perch_tiny(seed: int, width_multiplier: float, n_classes: int) -> PerchTiny:
    generator = torch.Generator().manual_seed(seed)
    model = PerchTiny(width_multiplier, n_classes)
    reinitialise(model, generator)
    calibrate(model, generator)
    return model


def opaque_names(model):
    """The same graph with every node, initializer and internal tensor renamed to a meaningless id
    (``n<i>``, ``w<i>``, ``t<i>`` in order of appearance); graph inputs and outputs keep their names.
    What a conversion by another tool can look like: only the structure says where the blocks are."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping = {t.name: f"w{i}" for i, t in enumerate(graph.initializer)}
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        for name in node.output:
            if name and name not in keep:
                mapping.setdefault(name, f"t{len(mapping)}")
    for node in graph.node:
        node.input[:] = [mapping.get(x, x) for x in node.input]
        node.output[:] = [mapping.get(x, x) for x in node.output]
    for t in graph.initializer:
        t.name = mapping[t.name]
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def with_dft_node(model):
    """The same graph with the frontend's two DFT MatMuls (frames @ window-cos, frames @ window-sin)
    replaced by one ONNX ``DFT`` node (onesided) on the windowed frames: the real part feeds what
    the cosine MatMul fed, the imaginary part what the sine MatMul fed (its sign flips; the
    frontend only squares it). Values agree to float32 rounding."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in ("frontend.cos", "frontend.sin"):
            found[node.input[1].split(".")[1]] = node
    if set(found) != {"cos", "sin"} or found["cos"].input[0] != found["sin"].input[0]:
        raise ValueError("perch_tiny graph: the frontend's cos/sin MatMuls were not found")
    frames = found["cos"].input[0]
    cos = numpy_helper.to_array(inits["frontend.cos"])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)
    if not np.allclose(cos[:, 0], window, atol=1e-6):
        raise ValueError("perch_tiny graph: frontend.cos[:, 0] is not the Hann window")
    scope = "/frontend/dft"
    graph.initializer.extend([numpy_helper.from_array(window, f"{scope}/window"),
                              numpy_helper.from_array(np.array([-1], np.int64), f"{scope}/last_axis"),
                              numpy_helper.from_array(np.array(0, np.int64), f"{scope}/real"),
                              numpy_helper.from_array(np.array(1, np.int64), f"{scope}/imag")])
    new = [
        helper.make_node("Mul", [frames, f"{scope}/window"], [f"{scope}/windowed"], name=f"{scope}/Mul"),
        helper.make_node("Unsqueeze", [f"{scope}/windowed", f"{scope}/last_axis"], [f"{scope}/signal"],
                         name=f"{scope}/Unsqueeze"),
        helper.make_node("DFT", [f"{scope}/signal"], [f"{scope}/spectrum"], name=f"{scope}/DFT",
                         axis=2, onesided=1),
        helper.make_node("Gather", [f"{scope}/spectrum", f"{scope}/real"], [found["cos"].output[0]],
                         name=f"{scope}/Real", axis=-1),
        helper.make_node("Gather", [f"{scope}/spectrum", f"{scope}/imag"], [found["sin"].output[0]],
                         name=f"{scope}/Imag", axis=-1),
    ]
    nodes = []
    for node in graph.node:
        if node is found["cos"]:
            nodes.extend(new)
        elif node is not found["sin"]:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    keep = [t for t in graph.initializer if t.name not in ("frontend.cos", "frontend.sin")]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model


FORMS = ("onnx_no_dft", "onnx", "opaque")  # in-graph matmul DFT | ONNX DFT op | matmul, meaningless names


def export_perch_tiny(path: Path, seed: int, width_multiplier: float, n_classes: int = 32,
                      form: str = "onnx_no_dft") -> dict:
    """Build the fixture from ``seed`` and write its ONNX to ``path`` (same seed, same bytes).
    ``form``: ``onnx_no_dft`` (default: the frontend's DFT as two MatMuls, Perch-like scope names),
    ``onnx`` (the DFT as an ONNX ``DFT`` node, like the Perch v2 file with its DFT) or ``opaque``
    (``onnx_no_dft`` with every name replaced by a meaningless id). Same weights in every form.
    Returns the backbone spec (the input/output fields of backbone.json)."""
    if not 0 < width_multiplier <= 1:
        raise ValueError(f"perch_tiny width_multiplier must be in (0, 1], got {width_multiplier}")
    if form not in FORMS:
        raise ValueError(f"perch_tiny form must be one of {FORMS}, got {form!r}")
    model = build_perch_tiny(seed, width_multiplier, n_classes)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model, (torch.zeros(1, WINDOW_SAMPLES),), buffer, dynamo=False, opset_version=17,
            input_names=[SPEC.input_name],
            output_names=[SPEC.logits_output, SPEC.embedding_output, "spatial_embedding", "spectrogram"],
            dynamic_axes={name: {0: "batch"} for name in
                          (SPEC.input_name, SPEC.logits_output, SPEC.embedding_output, "spatial_embedding",
                           "spectrogram")},
        )
    data = buffer.getvalue()
    if form != "onnx_no_dft":
        import onnx

        graph = onnx.load_from_string(data)
        data = (opaque_names(graph) if form == "opaque" else with_dft_node(graph)).SerializeToString()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return SPEC.io([f"perch_tiny_{i:03d}" for i in range(n_classes)])


def build(cfg: dict, out: Path, cache: Path) -> dict:
    """The registry's builder (birdclef_eos/backbone/registry.py): the fixture at
    `backbone.perch_tiny.seed` and `width_multiplier`, written to ``out``."""
    pt = cfg["perch_tiny"]
    spec = export_perch_tiny(out, seed=pt["seed"], width_multiplier=pt["width_multiplier"])
    return {"spec": spec, "source": {"generator": "birdclef_eos/backbone/perch_tiny.py", "seed": pt["seed"],
                                     "width_multiplier": pt["width_multiplier"]},
            "inputs": {}, "versions": runtime_versions(("torch",)), "summary": {}}


def export_weights(path: Path, seed: int, width_multiplier: float, n_classes: int = 32) -> None:
    """The fixture's weights (BatchNorm folded) and block list as one ``.npz``, for rebuilding the same
    model in TensorFlow (perch_tiny_tf.py, in the conversion environment) as a SavedModel."""
    import json

    model = build_perch_tiny(seed, width_multiplier, n_classes)
    arrays = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    blocks = []
    for i in range(model.n_blocks):
        block = getattr(model, f"MBConv_{i}")
        conv = block.DepthwiseConv.conv
        blocks.append({"kernel": conv.kernel_size[0], "stride": conv.stride[0], "residual": block.residual,
                       "expand": not isinstance(block.ExpandConv, nn.Identity)})
    config = {"window_samples": WINDOW_SAMPLES, "frame": FRAME, "blocks": blocks}
    np.savez(path, config=np.array(json.dumps(config)), **arrays)
