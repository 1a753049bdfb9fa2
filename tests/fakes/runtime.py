"""params.yaml's `runtime` section, for the tests that hand a stage its params by hand.

A stage types the whole section (``RuntimeParams``, birdclef_eos/io/runtime_config.py) and keeps no
fallback of its own (params.yaml is the one place a knob's default lives), so such a test hands it the
shipped section (in-process: one worker, no scheduler), with the knobs it means to change on top.
"""
from __future__ import annotations

from stages.schema import load_params

SHIPPED = load_params()["runtime"]


def runtime(**knobs) -> dict:
    """The shipped `runtime:` section with ``knobs`` in place of its own (a fresh dict each call)."""
    return {**SHIPPED, **knobs}
