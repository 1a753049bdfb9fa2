"""Reading params.yaml, the one place a user sets anything.

A stage module declares ``PARAMS``: the params.yaml sections or dotted knobs it reads, exactly
as its dvc.yaml entry lists them (`{key}` stands for the foreach key, e.g.
``train.variants.{key}``); tests/stages/test_layout.py checks that the two agree. ``stage_params``
validates the whole file against stages/schema.py before any work (and refuses an input path,
such as ``dataset.root``, that lies on or around a path dvc.yaml lists as an output, and a knob that
makes a stage read a path its dvc.yaml deps do not list), then hands the stage only
what it declared, plus the unhashed ``runtime`` section (knobs that cannot change a result: the cache folder).
The check passes or refuses and changes no value, which is why stages/layout.py leaves it out of the
stages' code deps (a test holds both).
It hands a mapping (papermill passes the notebook JSON); a stage whose sections have typed models
(stages/schema.py ``MODELS``) types them once at the top of its ``run`` (its ``Params.of``).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from stages.paths import BLOCKS_JSON, DVC_YAML, PARAMS_FILE
from stages.schema import check_pipeline, load_params, n_blocks_of, validate

RUNTIME = "runtime"


def declared(stage: str, key: str | None = None) -> list[str]:
    """The dotted params a stage module declares, with ``{key}`` filled in."""
    module = importlib.import_module(f"stages.{stage}")
    return [p.replace("{key}", key) if key is not None else p for p in module.PARAMS]


def pick(params: dict, dotted: str, source: str) -> object:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{source}: '{dotted}' is missing")
        node = node[part]
    return node


def put(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def stage_params(stage: str, key: str | None = None, path: str | Path = PARAMS_FILE) -> dict:
    """The knobs ``stages.<stage>`` declares (nested as in params.yaml) plus ``runtime``,
    after validating the whole file (block indices against models/blocks.json when it exists)."""
    everything = load_params(path)
    validate(everything, n_blocks=n_blocks_of(BLOCKS_JSON), source=str(path))
    check_pipeline(everything, DVC_YAML, source=str(path))  # before any stage deletes a user's folder
    out: dict = {}
    for dotted in declared(stage, key):
        put(out, dotted, pick(everything, dotted, str(path)))
    out[RUNTIME] = everything[RUNTIME]
    return out
