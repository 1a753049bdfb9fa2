"""The typed config of Figure 2 (trajectories.py; the `figures` stage): params.yaml
`figures.trajectories`, each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says
why pydantic, and why no defaults here). The embedding methods and alignments are ``METHODS`` /
``ALIGNS`` below, which trajectories.py checks its arguments against too. `figures.pipelines` is the
blend stage's and keeps its rows in stages/schema.py. Imports no numpy or matplotlib:
stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config, Number, Seed, blocks

METHODS = ("pca", "tsne", "umap")       # the joint 2-D embedding (umap: optional, umap-learn)
ALIGNS = ("procrustes", "none")         # each block's PCA rotated onto the previous block's | not
SPECIES = ("probe", "focal")            # the probe's species (build/metrics/probe) | every focal species


class Trajectories(Config):
    """`figures.trajectories`: per-species centroids through the last blocks (``last``: the last
    ``n_last`` extracted; or block indices in path order), each block reduced to ``width`` PCA
    components, aligned, embedded jointly; ``showcase`` species drawn in colour."""
    species: Literal[SPECIES]
    blocks: blocks("last")
    n_last: Annotated[int, Field(ge=2)]
    width: Annotated[int, Field(ge=2)]
    align: Literal[ALIGNS]
    method: Literal[METHODS]
    perplexity: Annotated[Number, Field(gt=0)]   # tsne only
    showcase: Annotated[int, Field(ge=0)]
    seed: Seed                                   # tsne / umap
