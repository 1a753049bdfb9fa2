"""The typed config of the passes over the audio: params.yaml `extract` (``ExtractParams``, the backbone's:
the seeded focal windows and test shifts of the window plan, birdclef_eos/data/plans.py; the logit
columns kept; what ``forward`` in windows.py does with a file it cannot read; the batch), each knob's
type, bounds and choices stated once (birdclef_eos/knobs.py says why pydantic, and why no defaults
here), and `spectrogram` (``SpectrogramParams``: spectrogram.py's log-mel of the windows the SED reads).
The `extract_labelled` stage reads only ``LabelledExtract``'s knobs, which ``ExtractParams``
extends, so each type is written once.

The shift lists are written into data/features' meta.json as given and the mel band edges into the
spectrogram store, so they are ``Number`` (an int stays an int). The bad-audio choices are
choices.py's, which windows.py (shipped in the Kaggle model folder, where pydantic is not imported)
imports too. Imports no numpy: stages/schema.py, which every stage loads, reads it.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from birdclef_eos.audio.choices import BAD_AUDIO
from birdclef_eos.knobs import Config, KnobError, Number, numbers

LOGIT_MODES = ("competition", "all", "none")  # one column per species.csv class | every backbone class | none

PositiveInt = Annotated[int, Field(ge=1)]
Shifts = numbers(as_written=True)          # window shifts, s


class LabelledExtract(Config):
    """What the `extract_labelled` stage reads of `extract`: the labelled soundscape chunks read
    again at ``labelled_shifts`` (null: none), the same logit columns, bad-audio rule and batch."""
    labelled_shifts: Optional[Shifts]
    logits: Literal[LOGIT_MODES]
    on_bad_audio: Literal[BAD_AUDIO]
    batch_windows: PositiveInt               # windows read and run at once (memory only)


class ExtractParams(LabelledExtract):
    """params.yaml `extract`: focal windows per recording and their seed, the test shifts, and the
    knobs the labelled pass shares."""
    windows_per_recording: PositiveInt
    tta_shifts: Shifts
    seed: Annotated[int, Field(ge=0)]


class SpectrogramParams(Config):
    """params.yaml `spectrogram`: spectrogram.py's ``MelSpec`` (STFT size and hop in samples, mel bins,
    band edges in Hz; the sample rate is `dataset.sample_rate`), the test shifts cached (s) and the
    batch. fmin < fmax is its validator; fmax <= the Nyquist frequency is stages/schema.py's
    ``rule_spectrogram`` (it spans `dataset`)."""
    n_fft: Annotated[int, Field(ge=16)]
    hop: PositiveInt
    n_mels: PositiveInt
    fmin: Annotated[Number, Field(ge=0)]
    fmax: Annotated[Number, Field(gt=0)]
    test_shifts: Shifts
    batch_windows: PositiveInt               # windows transformed at once (memory only)

    @model_validator(mode="after")
    def _band(self) -> SpectrogramParams:
        if self.fmin >= self.fmax:
            raise KnobError("fmin", self.fmin, f"expected < {{prefix}}fmax ({self.fmax})")
        return self
