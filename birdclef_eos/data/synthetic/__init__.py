"""The synthetic BirdCLEF 2026 data set; ``generate`` writes the competition layout (see README.md)."""
from birdclef_eos.data.synthetic.layout import generate

__all__ = ["generate"]
