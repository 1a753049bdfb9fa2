"""Reading params.yaml: the one place a user sets anything."""
from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from stages.paths import PARAMS_FILE


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def stage_params(stage: str, path: str | Path = PARAMS_FILE) -> dict:
    """The params.yaml sections that ``stages.<stage>`` declares in its ``PARAMS``."""
    module = importlib.import_module(f"stages.{stage}")
    everything = load_params(path)
    missing = [s for s in module.PARAMS if s not in everything]
    if missing:
        raise KeyError(f"{path}: stage '{stage}' needs section(s) {missing}, which are missing")
    return {section: everything[section] for section in module.PARAMS}
