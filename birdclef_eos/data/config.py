"""The typed config of the data set: params.yaml `dataset` (``DatasetParams``: where the data comes
from, the synthetic generator's world and scales, ``SyntheticScale``, and real-data mode's local
board, ``Holdout``), each knob's type, bounds and choices stated once (birdclef_eos/knobs.py says why
pydantic, and why no defaults here). The holdout groups are ``HOLDOUT_GROUPS`` below, which holdout.py
draws by. Numbers are ``Number``: the stage writes the holdout knobs into source.json and a README,
and the generator reads the world's knobs, as written (``5`` stays ``5``).

The rules that span knobs are the models' validators, each raising ``KnobError`` on the knob it
blames: the scale is a key of `scales`, a scale's species >= genera >= 1 and head species <= species,
the class shares sum to 1, the chunk is the competition's 5 s and fits the soundscape, a call's
minimum overlap is shorter than the chunk. Imports no numpy or pandas: stages/schema.py, which every
stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from birdclef_eos.knobs import Config, KnobError, Number, Text, span

CHUNK_S = 5  # the competition's label grid, which the reader (birdclef.py) and every scoring stage use
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

    @model_validator(mode="after")
    def _species_fit(self) -> SyntheticScale:
        if self.species < self.genera:
            raise KnobError("species", self.species, f"expected >= genera ({self.genera})")
        if self.head_species > self.species:
            raise KnobError("head_species", self.head_species, f"expected <= species ({self.species})")
        return self


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

    @model_validator(mode="after")
    def _fits(self) -> DatasetParams:
        """The rules across knobs, the first that fails (stages/schema.py reports it by its knob)."""
        if self.scale not in self.scales:
            raise KnobError("scale", self.scale, f"expected a key of {{prefix}}scales: {' | '.join(self.scales)}")
        if not self.class_shares:
            raise KnobError("class_shares", self.class_shares, "expected at least one class")
        total = sum(self.class_shares.values())
        if abs(total - 1) > 1e-6:
            raise KnobError("class_shares", self.class_shares, f"shares must sum to 1, not {total:g}")
        if self.chunk_s > self.soundscape_s:
            raise KnobError("chunk_s", self.chunk_s, f"expected <= {{prefix}}soundscape_s ({self.soundscape_s})")
        if self.min_overlap_s >= self.chunk_s:
            raise KnobError("min_overlap_s", self.min_overlap_s, f"expected < {{prefix}}chunk_s ({self.chunk_s})")
        if self.chunk_s != CHUNK_S:
            raise KnobError("chunk_s", self.chunk_s, f"expected {CHUNK_S}: the competition's label grid, which the "
                            "reader (birdclef_eos/data/birdclef.py) and every scoring stage use")
        return self

    def generator(self) -> dict:
        """The synthetic generator's knobs (birdclef_eos/data/synthetic): the world's, then the chosen
        scale's, each as written in params.yaml."""
        world = self.model_dump(exclude={"scales", "source", "root", "scale", "seed", "jobs", "holdout"})
        return {**world, **self.scales[self.scale].model_dump()}
