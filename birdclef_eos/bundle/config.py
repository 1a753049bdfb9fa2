"""The typed config of the Kaggle bundles (the `model_folder` and `bundle` stages): params.yaml
`kaggle` (the owner, the slugs, what is vendored) and each `bundles.<name>` (a kind of
bundle/kinds.py and the submission it rebuilds), each knob's type and choices stated once
(birdclef_eos/knobs.py says why pydantic, and why no defaults here). A slug and a user name follow
Kaggle's rules as bundle/kernel.py states them (``SLUG``, ``USER``, ``PLACEHOLDERS``: read from
there, not copied). Which submission a kind rebuilds spans sections: stages/schema.py ``rule_bundles``.

Neither this module nor kernel.py is in the Kaggle model folder's code (bundle/infer.py's import
closure). Standard library and pydantic only: the bundle stage re-runs on every `-S blend.weight=...`.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator

from birdclef_eos.bundle.kernel import PLACEHOLDERS, SLUG, USER
from birdclef_eos.bundle.kinds import BUNDLE_KINDS
from birdclef_eos.knobs import Config, Shape, Text, names


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise ValueError("expected a Kaggle slug: 3 to 50 lowercase letters, digits and single inner hyphens")
    return value


def _user(value: str) -> str:
    if value in PLACEHOLDERS or not USER.match(value):
        raise ValueError("expected your Kaggle user name (3 to 20 lowercase letters, digits and inner hyphens), "
                         "not a placeholder")
    return value


Slug = Annotated[str, AfterValidator(_slug), Shape("slug")]
KaggleUser = Annotated[str, AfterValidator(_user), Shape("kaggle_user")]


class KaggleParams(Config):
    """params.yaml `kaggle`: ``owner`` null builds every kernel without Kaggle metadata; ``vendor``
    and ``vendor_exclude`` may be empty."""
    owner: KaggleUser | None
    competition: Slug
    model_dataset: Slug
    kernel_prefix: Slug
    vendor: names(0)
    vendor_exclude: names(0)


class Bundle(Config):
    """params.yaml `bundles.<name>`: what the kernel rebuilds."""
    kind: Literal[tuple(BUNDLE_KINDS)]
    submission: Text
