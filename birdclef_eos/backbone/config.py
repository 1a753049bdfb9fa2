"""The typed config of the sidecar's BirdNET pass: params.yaml `sidecar.extract` (``SidecarExtract``:
how runner.py's ``Backbone`` runs BirdNET V2.4 over every window of the main store in real-data
mode), each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why pydantic, and
why no defaults here).

runner.py ships inside the Kaggle model folder and cannot import this pydantic module, and importing
it here would load the audio decoder into stages/schema.py, which every stage loads; so
``CHUNK_MAPPINGS`` repeats runner.py's (a test keeps the two equal).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config, Frontend

CHUNK_MAPPINGS = ("center", "mean")  # as runner.py: BirdNET's 3-s window at the chunk's centre | mean of its windows

PositiveInt = Annotated[int, Field(ge=1)]


class SidecarExtract(Config):
    """`sidecar.extract`: BirdNET's window on the 5-s chunk, chunks per onnxruntime call, intra-op
    threads, where its DFT runs and the windows read at once."""
    chunk_mapping: Literal[CHUNK_MAPPINGS]
    batch_size: PositiveInt                  # hashed: it moves the last bits
    threads: PositiveInt
    frontend: Frontend
    batch_windows: PositiveInt               # memory only
