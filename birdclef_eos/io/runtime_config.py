"""The typed config of how this machine runs the pipeline: params.yaml `runtime` (``RuntimeParams``),
each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why pydantic, and why no
defaults here).

Why here, in io: the section is the one no stage hashes (stages/params.py hands it to every stage
beside what the stage declares), knobs that cannot change a result, and its readers are spread over
the library: the Dask cluster (`workers`, `scheduler`: cluster.py ``open_client``), the cache of
downloaded and converted files (`cache_dir`: the backbone builders, bundle/wheels.py) and the
execution provider (`provider`: backbone/frontend.py ``make_session``). io holds the other
machine-level helpers (cluster.py, machine.py); the provider words are backbone/choices.py's, which
frontend.py implements, so none is written here.

Imports no numpy, onnx or onnxruntime: stages/schema.py, which every stage loads, reads it. Every
stage that reads the section types it once and hands the library the values it needs (the library
never sees the section), so params.yaml holds each knob's one default: no stage falls back on its own.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.backbone.choices import PROVIDERS, TORCH_PROVIDERS
from birdclef_eos.knobs import Config, Text

PROVIDER_WORDS = (*PROVIDERS, *TORCH_PROVIDERS)  # onnxruntime's, then the PyTorch route's


class RuntimeParams(Config):
    """params.yaml `runtime`: the user cache folder (``~`` expanded by its reader), the backbone's
    execution provider, the local Dask cluster's worker processes (1: in-process) and a running
    scheduler's address (null: none; when set, `workers` is ignored)."""
    cache_dir: Text
    provider: Literal[PROVIDER_WORDS]
    workers: Annotated[int, Field(ge=1)]
    scheduler: Text | None
