"""The kinds of a Kaggle bundle, by name: what `bundles.<name>.kind` may say and what a blend's part
may be. birdclef_eos/bundle/infer.py `KINDS` maps each name to the function that makes its
probabilities; stages/schema.py takes the allowed values of `bundles.*.kind` from ``BUNDLE_KINDS``.
Standard library only (every stage loads it through the params schema). infer.py keeps its own
mapping (it ships inside the Kaggle model folder, whose bytes a change there would change);
tests/birdclef_eos/bundle/test_kinds.py keeps the names equal.
"""
from __future__ import annotations

BUNDLE_KINDS: dict[str, str] = {  # a bundle's own kind
    "predict": "a `submissions:` entry: one head's test probabilities over its TTA shifts",
    "chain": "the chain (base): ProtoSSM + SED + the rank blend of the heads",
    "blend": "a `blends:` entry: its parts, each a bundle config of its own kind",
}
PART_KINDS: dict[str, str] = {  # only inside another kind
    "sidecar": "the BirdNET sidecar's standalone submission, a blend's rank correction (eos10)",
    "vit": "a vit stage's raw submission vit<size>: its fold models on log-mels from the test audio (eos12, eos13)",
}
KINDS: tuple[str, ...] = (*BUNDLE_KINDS, *PART_KINDS)
