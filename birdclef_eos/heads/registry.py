"""The sequence-head types, one ``HeadType`` each in ``HEAD_TYPES`` (a variant's `head`, a config's
`model.type`).

A head type is its model class in birdclef_eos/heads/models.py (``model``; `build_head` makes it)
plus one entry here. Stages read what they need of a type from its entry (whether the paper reported
its block weights, the note its probe-versus-weights table carries) and never test its name;
stages/schema.py takes the allowed values of `train.variants.*.head` and `sidecar.head.type` from
here. Standard library only: every stage loads it through the params schema.

models.py keeps its own tuple of the names (it ships inside the Kaggle model folder, whose bytes a
change there would change); tests/birdclef_eos/heads/test_registry.py keeps the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass


class HeadTypeError(ValueError):
    pass


@dataclass(frozen=True)
class HeadType:
    """model: the class in heads/models.py. attention: reads its tokens with a CLS attention pool (its
    per-block weights are CLS attention; the sidecar's head must be one). paper_weights: the paper
    reported this head's block weights (reported.yaml `scalar_mix_weights`), shown beside the
    learned ones. table_note: appended to its probe-versus-weights table."""
    name: str
    model: str
    attention: bool
    paper_weights: bool = False
    table_note: str = ""


HEAD_TYPES: dict[str, HeadType] = {
    "scalarmix": HeadType("scalarmix", "ScalarMix", attention=False, paper_weights=True),
    "attn": HeadType("attn", "AttentionPool", attention=True),
    "residual": HeadType("residual", "AttentionPool", attention=True,
                         table_note=("\nThe last token of the residual head is h_last - h_previous, so its weight "
                                     "belongs to that difference, not to the block itself.\n")),
}


def head_type(name: str, where: str = "head type") -> HeadType:
    """The entry of ``name``, or an error naming ``where`` and the known types."""
    if name not in HEAD_TYPES:
        raise HeadTypeError(f"{where}: unknown head type {name!r}; expected one of {list(HEAD_TYPES)}")
    return HEAD_TYPES[name]


def attention_types() -> tuple[str, ...]:
    """The types that pool with CLS attention (allowed for the sidecar's one-token head)."""
    return tuple(n for n, t in HEAD_TYPES.items() if t.attention)
