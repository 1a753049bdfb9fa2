"""The typed config of the blends: params.yaml `blend` (the shared knobs: the head's weight, the
space, the taxonomy smoothing, the OOF comparison's bootstrap) and each `blends.<name>` entry (its
parts, space, taxonomy, normalisation and sidecar correction), each knob's type, bounds and choices
stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). The rules that span
entries (parts that exist, no cycle, the weights' sum) stay stages/schema.py's ``rule_blends``, which
resolves the weights as blend.py does.

scoring/blend.py and scoring/sidecar.py ship inside the Kaggle model folder and take the plain
mappings (a kernel reads them from a blend's manifest): the blend stage hands them ``dump(...)``, the
values as written, so a manifest and a kernel notebook keep their bytes. Imports no numpy: the blend
stage re-runs on every `-S blend.weight=...`, and stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field

from birdclef_eos.knobs import Confidence, Config, Number, Seed, Shape, Text

Share = Annotated[Number, Field(ge=0, le=1)]
SPACES = ("prob", "rank")                      # where the parts are mixed (blend.py `mix`)
SHARED_WORDS = ("weight", "rest")              # a part's weight: blend.weight, or what the others leave
# a part's weight: a number in [0, 1], `weight` (blend.weight) or `rest` (1 - the others)
PartWeight = Annotated[Union[Share, Literal[SHARED_WORDS]], Shape("share", 0, 1, words=SHARED_WORDS)]


class Taxonomy(Config):
    """The pull towards the genus mean, then the class mean (blend.py, postprocess.taxonomy_smooth)."""
    genus: Share
    class_: Share = Field(alias="class")


class BlendShared(Config):
    """params.yaml `blend`: the head's weight an entry names as `weight`, the space (``oof``: chosen on
    the base's OOF), the taxonomy strengths, and the OOF comparison's paired bootstrap."""
    weight: Share
    space: Literal[(*SPACES, "oof")]
    bootstrap: Annotated[int, Field(ge=2)]
    confidence: Confidence
    seed: Seed
    taxonomy: Taxonomy


class BlendSidecar(Config):
    """`blends.<name>.sidecar`: the sidecar's masked rank correction (scoring/sidecar.py)."""
    submission: Text
    weight: Share
    top_k: Annotated[int, Field(ge=0)]
    threshold: Share
    threshold_space: Literal["rank", "score"]
    budget: Annotated[Number, Field(ge=0)] | None


class BlendEntry(Config):
    """params.yaml `blends.<name>`: the parts and their weights; each other knob may be absent (space:
    blend.space; taxonomy, normalise: false; sidecar: none)."""
    parts: dict[str, PartWeight]
    taxonomy: bool = None
    space: Literal[SPACES] = None
    normalise: bool = None
    sidecar: BlendSidecar = None


def dump(typed: BaseModel) -> dict:
    """The mapping as written in params.yaml (its own keys, absent knobs left out, numbers as given):
    what blend.py, sidecar.py and a blend's manifest take. An int part weight is handed on as the int it
    is; pydantic's union serializer would warn that it is no float (hence ``warnings=False``)."""
    return typed.model_dump(exclude_unset=True, by_alias=True, warnings=False)
