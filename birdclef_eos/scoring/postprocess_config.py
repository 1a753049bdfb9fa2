"""The typed config of post-processing: params.yaml `postprocess`, its knobs' types, bounds and
choices stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults here), and the
overrides a submission or the chain gives over it (``Overrides``: true, false or a mapping of some of
the same knobs, ``PostprocessOverrides``, derived from ``Postprocess`` so a bound is written once):
stages/schema.py derives both tables from these models.

Every number is ``Number``: the stages write the resolved knobs into manifests and metrics, so an int
written in params.yaml must reach them as an int (as it did from the raw mapping).

birdclef_eos/scoring/postprocess.py ships inside the Kaggle model folder: its ``Knobs`` dataclass (no
defaults either) and ``resolve_knobs`` stay as they are, and it never imports this module; a stage
resolves ``resolve_knobs(section.model_dump(), as_given(entry.postprocess), name)``.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, create_model

from birdclef_eos.knobs import Config, Number, Shape

NonNegative = Annotated[Number, Field(ge=0)]
Share = Annotated[Number, Field(ge=0, le=1)]


class Postprocess(Config):
    prior_alpha: NonNegative
    prior_k_hour: Annotated[Number, Field(gt=0)]
    prior_k_site: Annotated[Number, Field(gt=0)]
    prior_k_site_hour: NonNegative
    prior_clip: Annotated[Number, Field(gt=0, lt=0.5)]
    prior_relative: bool
    sigma: NonNegative
    smooth_mode: Literal["nearest", "reflect", "mirror", "constant", "wrap"]  # scipy.ndimage's boundary modes
    smooth_space: Literal["logit", "prob"]
    smooth_truncate: Annotated[Number, Field(gt=0)]
    tta_space: Literal["prob", "logit"]
    rank_power: NonNegative
    neighbour_base: Share
    tax_genus_alpha: Share
    tax_class_alpha: Share


def _optional(info):
    """A field's type with its bounds, and None for "absent"."""
    return (Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation), None


# Some of Postprocess's knobs, each optional (absent: the shared default), with the same types and bounds.
PostprocessOverrides = create_model("PostprocessOverrides", __base__=Config, __module__=__name__,
                                    **{name: _optional(info) for name, info in Postprocess.model_fields.items()})

# A post-processing choice: true (the shared `postprocess` knobs), false (raw) or a mapping of overrides.
Overrides = Annotated[Union[bool, PostprocessOverrides], Shape("overrides")]


def as_given(post: bool | PostprocessOverrides | None) -> bool | dict | None:
    """What postprocess.resolve_knobs takes: true, false (None: absent, raw) or the overrides as written."""
    return post.model_dump(exclude_unset=True) if isinstance(post, PostprocessOverrides) else post
