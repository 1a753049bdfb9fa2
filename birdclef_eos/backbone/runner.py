"""The backbone runner every later stage uses: 5-s audio chunks in, pooled block features out.

`Backbone(...).features(windows)` resamples the chunks to the model's rate (polyphase), maps each
chunk onto the model's window (identity for Perch's 5 s; for BirdNET's 3 s, `center` takes the
middle 3 s and `mean` averages the features of the windows [0, 3] and [2, 5]), applies the model's
audio normalisation, runs the probed ONNX in batches and returns float32 arrays.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
import math
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from birdclef_eos.audio.decode import resample
from birdclef_eos.backbone.choices import CHUNK_MAPPINGS

NORMALISATIONS = ("perch", "none")
PERCH_PEAK = 0.25


class BackboneError(RuntimeError):
    pass


def normalise_audio(x: np.ndarray, how: str) -> np.ndarray:
    """Per window (rows of ``x``): `perch` subtracts the mean and scales the peak to 0.25; `none` keeps it."""
    if how == "none":
        return x.astype(np.float32, copy=False)
    if how != "perch":
        raise BackboneError(f"unknown normalisation {how!r}; expected one of {NORMALISATIONS}")
    x = x - x.mean(axis=1, keepdims=True)
    peak = np.abs(x).max(axis=1, keepdims=True)
    return (x * (PERCH_PEAK / np.where(peak > 0, peak, 1.0))).astype(np.float32)


def window_offsets(chunk_samples: int, window_samples: int, mapping: str) -> list[int]:
    """Start samples of the model windows cut from one chunk (both at the model's rate)."""
    if mapping not in CHUNK_MAPPINGS:
        raise BackboneError(f"unknown chunk_mapping {mapping!r}; expected one of {CHUNK_MAPPINGS}")
    if chunk_samples < window_samples:
        raise BackboneError(f"chunks of {chunk_samples} samples are shorter than the model window "
                            f"({window_samples} samples)")
    spare = chunk_samples - window_samples
    if spare == 0:
        return [0]
    return [spare // 2] if mapping == "center" else [0, spare]


def load_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackboneError(f"{path}: cannot read JSON ({exc})") from exc


@dataclass
class BackboneOutputs:
    """What the runner returns for N chunks, all float32 and row-aligned with the input:

    blocks: {"block_07": [N, C_07], ...}, the pooled block outputs in block order;
    embedding: [N, E], the backbone's final embedding (None when it has none);
    logits: [N, L], the model's raw class outputs (L = len(backbone.json classes)).
    With ``chunk_mapping: mean`` every array is the mean over the chunk's model windows.
    """
    blocks: dict[str, np.ndarray]
    embedding: np.ndarray | None
    logits: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The flat mapping the feature store keeps: block names, then "embedding", "logits"."""
        out = dict(self.blocks)
        if self.embedding is not None:
            out["embedding"] = self.embedding
        out["logits"] = self.logits
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "BackboneOutputs":
        return cls(blocks={k: v for k, v in arrays.items() if k.startswith("block_")},
                   embedding=arrays.get("embedding"), logits=arrays["logits"])


class Backbone:
    def __init__(self, probed_onnx, backbone_json, blocks_json, *, threads: int, batch_size: int,
                 chunk_mapping: str, input_rate: int, blocks=None, progress: bool = True,
                 frontend: str = "graph", provider: str = "cpu"):
        import onnx

        from birdclef_eos.backbone.frontend import FrontendRunner, make_session, resolve

        # either file may be given as its parsed mapping (the sidecar's BirdNET has no files of its own)
        spec = backbone_json if isinstance(backbone_json, dict) else load_json(backbone_json)
        inventory = blocks_json if isinstance(blocks_json, dict) else load_json(blocks_json)
        self.sample_rate = int(spec["sample_rate"])
        self.window_samples = int(spec["window_samples"])
        self.normalisation = spec["normalisation"]
        normalise_audio(np.zeros((1, 2), np.float32), self.normalisation)  # fail early on an unknown one
        self.input_name = spec["input_name"]
        self.input_rate = int(input_rate)
        self.batch_size = int(batch_size)
        self.chunk_mapping = chunk_mapping
        window_offsets(self.window_samples, self.window_samples, chunk_mapping)
        self.progress = progress

        # the frontend's DFT can run in numpy in the preparation thread (frontend.py: `auto`, `dft`)
        self.frontend = None
        model = onnx.load(str(probed_onnx)) if frontend != "graph" else None
        if frontend == "graph" or resolve(model, frontend) == "graph":
            self.session = make_session(str(probed_onnx), int(threads), provider)
        else:
            self.frontend = FrontendRunner(model, resolve(model, frontend), self.window_samples,
                                           lambda part, t: make_session(part, t or int(threads), provider,
                                                                        spinning=False))
            self.session = self.frontend.back
        available = {o.name: o for o in self.session.get_outputs()}

        listed = inventory["blocks"]
        if blocks is not None:
            wanted = {f"block_{i:02d}" if isinstance(i, int) else i for i in blocks}
            found = [b["name"] for b in listed]
            if not wanted <= set(found):
                raise BackboneError(f"{blocks_json}: blocks {sorted(wanted - set(found))} not in the "
                                    f"probed graph; it has {found}")
            listed = [b for b in listed if b["name"] in wanted]
        self.block_names = [b["name"] for b in listed]
        self.channels = {b["name"]: int(b["channels"]) for b in listed}
        self.outputs = {name: name for name in self.block_names}  # result key -> graph output
        if spec.get("embedding_output"):
            self.outputs["embedding"] = spec["embedding_output"]
        self.outputs["logits"] = spec["logits_output"]
        for key, name in self.outputs.items():
            if name not in available:
                raise BackboneError(f"{probed_onnx}: output {name!r} ({key}) missing; the graph has "
                                    f"{sorted(available)}")
            if key not in self.channels:
                width = inventory.get(f"{key}_channels", available[name].shape[-1])
                if not isinstance(width, int):
                    raise BackboneError(f"{blocks_json}: no {key}_channels and output {name!r} has no fixed width")
                self.channels[key] = width

    def input_spans(self, n_in: int) -> list[tuple[int, int, int]] | None:
        """Per model window: the input samples to resample (start, stop) and where the window
        starts in the result. Resampling only these spans (with a margin of the filter's
        half-length, aligned to the polyphase grid) gives bit-identical windows at lower cost;
        None when the whole chunk must be resampled anyway."""
        ratio = Fraction(self.sample_rate, self.input_rate)
        up, down = ratio.numerator, ratio.denominator
        offsets = window_offsets(n_in * up // down, self.window_samples, self.chunk_mapping)
        if (n_in * up) % down or (self.window_samples * down) % up or any((o * down) % up for o in offsets):
            return None
        # resample_poly's filter reaches 10 * max(up, down) upsampled samples either side
        margin = down * math.ceil((math.ceil(10 * max(up, down) / up) + 1) / down)
        spans = []
        for o in offsets:
            start, stop = o * down // up, (o + self.window_samples) * down // up
            lo, hi = max(0, start - margin), min(n_in, stop + margin)
            spans.append((lo, hi, (start - lo) * up // down))
        return spans if sum(hi - lo for lo, hi, _ in spans) < n_in else None

    def model_windows(self, chunks: np.ndarray) -> tuple[np.ndarray, int]:
        """Resampled, cut and normalised model inputs [n * k, window] and k windows per chunk."""
        w = self.window_samples
        spans = self.input_spans(chunks.shape[1])
        if spans is None:
            x = resample(chunks, self.input_rate, self.sample_rate)
            cut = [x[:, o:o + w] for o in window_offsets(x.shape[1], w, self.chunk_mapping)]
        else:
            cut = [resample(chunks[:, lo:hi], self.input_rate, self.sample_rate)[:, skip:skip + w]
                   for lo, hi, skip in spans]
        x = np.stack(cut, axis=1).reshape(-1, w)
        return normalise_audio(x, self.normalisation), len(cut)

    def prepare(self, chunks: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
        """The session's feeds for a batch of chunks (preparation thread), and k windows per chunk."""
        x, k = self.model_windows(chunks)
        return (self.frontend.prepare(x) if self.frontend else {self.input_name: x}), k

    def run_windows(self, n: int, prepared: tuple[dict[str, np.ndarray], int]) -> list[np.ndarray]:
        feeds, k = prepared
        values = self.session.run(list(self.outputs.values()), feeds)
        return [v.reshape(n, k, -1).mean(axis=1) for v in values]

    def features(self, windows: np.ndarray) -> BackboneOutputs:
        """float32 [N, samples] chunks at ``input_rate`` -> their pooled block outputs, embedding, logits."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2:
            raise BackboneError(f"windows must be [N, samples], got shape {windows.shape}")
        if not np.all(np.isfinite(windows)):
            bad = int(np.flatnonzero(~np.isfinite(windows).all(axis=1))[0])
            raise BackboneError(f"window row {bad} contains NaN or infinite samples")
        n = len(windows)
        result = {key: np.zeros((n, self.channels[key]), np.float32) for key in self.outputs}
        batches = [windows[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        # prepare the next batch (resample, normalise) while onnxruntime runs this one
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.prepare, batches[0]) if batches else None
            start = 0
            for i, batch in enumerate(tqdm(batches, desc="backbone", unit="batch", leave=False,
                                           disable=not self.progress or len(batches) < 2)):
                prepared = pending.result()
                if i + 1 < len(batches):
                    pending = pool.submit(self.prepare, batches[i + 1])
                for key, value in zip(self.outputs, self.run_windows(len(batch), prepared)):
                    result[key][start:start + len(batch)] = value
                start += len(batch)
        return BackboneOutputs.from_arrays(result)
