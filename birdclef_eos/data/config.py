"""The typed config of the data set: params.yaml `dataset` (``DatasetParams``: where the data comes
from, the synthetic generator's world and scales, ``SyntheticScale``, and real-data mode's local
board, ``Holdout``), each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why
pydantic, and why no defaults here). The holdout groups are ``HOLDOUT_GROUPS`` below, which holdout.py
draws by. Numbers are ``Number``: the stage writes the holdout knobs into source.json and a README,
and the generator reads the world's knobs, as written (``5`` stays ``5``).

The rules that span knobs (the scale is a key of `scales`, species >= genera, the class shares sum
to 1, the chunk fits the soundscape) are stages/schema.py's ``rule_scale``, ``rule_shares`` and
``rule_chunks``, which report every problem at once. Imports no numpy or pandas: stages/schema.py,
which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from birdclef_eos.knobs import Config, Number, Text, span

SOURCES = ("synthetic", "birdclef")      # generated from the seed | a real competition folder
HOLDOUT_GROUPS = ("file", "site_date")   # what real-data mode's local board holds out together

Seed = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
Share = Annotated[Number, Field(ge=0, le=1)]
NonNegative = Annotated[Number, Field(ge=0)]
Positive = Annotated[Number, Field(gt=0)]


class Holdout(Config):
    """`dataset.holdout`: real-data mode's local board, a seeded share of the labelled soundscape
    groups held out as test files."""
    share: Annotated[Number, Field(ge=0, lt=1)]   # 0: no local board
    group: Literal[HOLDOUT_GROUPS]
    seed: Seed


class SyntheticScale(Config):
    """One `dataset.scales` entry: counts of genera, species, recordings per species (head and tail
    ranges), recording length range in s, sites and soundscapes per split."""
    genera: PositiveInt
    species: PositiveInt
    head_species: Count
    head_recordings: span(1, integers=True)
    tail_recordings: span(1, integers=True)
    recording_s: span(0, lo_open=True)
    sites: PositiveInt
    labelled: Count
    unlabelled: Count
    test: PositiveInt


class DatasetParams(Config):
    """params.yaml `dataset`: the source, the synthetic world (lengths in s, rates in Hz, levels in
    dB) and its scales, the local board of real-data mode."""
    source: Literal[SOURCES]
    root: Text
    scale: Text
    seed: Seed
    jobs: PositiveInt
    sample_rate: Annotated[int, Field(ge=16000)]  # half Perch's 32 kHz input; 1 Hz crashed the generator
    chunk_s: Positive
    soundscape_s: Positive
    min_overlap_s: NonNegative
    public_fraction: Annotated[Number, Field(gt=0, lt=1)]  # 0 or 1 leaves a board empty
    holdout: Holdout
    class_shares: dict[str, Share]
    species_spread: NonNegative
    rendition_jitter: NonNegative
    site_presence: Share
    genus_share: Share
    call_interval_s: NonNegative
    focal_snr_db: span()
    secondary_rate: Share
    bouts_per_soundscape: NonNegative
    bout_s: span(0, lo_open=True)
    scales: dict[str, SyntheticScale]

    def generator(self) -> dict:
        """The synthetic generator's knobs (birdclef_eos/data/synthetic): the world's, then the chosen
        scale's, each as written in params.yaml."""
        if self.scale not in self.scales:
            raise KeyError(f"params.yaml: dataset.scale '{self.scale}' is not one of {sorted(self.scales)}")
        world = self.model_dump(exclude={"scales", "source", "root", "scale", "seed", "jobs", "holdout"})
        return {**world, **self.scales[self.scale].model_dump()}
