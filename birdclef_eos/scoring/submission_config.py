"""The typed config of one submission: params.yaml `submissions.<name>`, read by predict@<name> (the
model and its TTA shifts) and by the `submit` stage (its post-processing). Its knobs' types are
stated once here (birdclef_eos/knobs.py says why pydantic, and why no defaults here). The shifts stay
as written (``numbers(as_written=True)``): submit writes the entry into each submission's manifest.
Imports no numpy: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from birdclef_eos.knobs import Config, Text, numbers
from birdclef_eos.scoring.postprocess_config import Overrides


class Submission(Config):
    """params.yaml `submissions.<name>`: ``model`` a train variant or a student (models/heads/<model>/),
    ``tta`` the window shifts (s) averaged, ``postprocess`` true, false or overrides of `postprocess`
    (absent: raw)."""
    model: Text
    tta: numbers(as_written=True) = None
    postprocess: Overrides = None
