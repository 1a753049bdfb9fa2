"""A small competition folder in the exact BirdCLEF 2026 layout, made from the synthetic generator.

No real recordings exist here, so real-data mode is tested on the synthetic set's competition half
(taxonomy.csv, train.csv, train_audio/, train_soundscapes/, train_soundscapes_labels.csv,
sample_submission.csv) with an empty ``test_soundscapes/``, as Kaggle ships it outside the
scoring run. The README's "Real-data mode" section gives the same recipe for the default set.
"""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from birdclef_eos.data import synthetic

CFG = dict(sample_rate=32000, chunk_s=5, soundscape_s=20, min_overlap_s=0.1, public_fraction=0.5,
           class_shares={"Aves": 0.6, "Amphibia": 0.2, "Insecta": 0.2}, species_spread=0.06,
           rendition_jitter=0.04, site_presence=0.6, genus_share=0.0, call_interval_s=0.6, focal_snr_db=[0, 20],
           secondary_rate=0.5, bouts_per_soundscape=1.0, bout_s=[2, 10],
           genera=3, species=6, head_species=4, head_recordings=[3, 4], tail_recordings=[1, 2],
           recording_s=[3, 5], sites=2, labelled=6, unlabelled=2, test=2)  # the smoke scale's shape


@functools.lru_cache(maxsize=None)
def generated(seed: int, cfg_json: str) -> Path:
    """The generator's output for (seed, config), made once per test session (1-2 s each time) in a
    temporary folder removed at exit; `small_competition` copies it (same seed and config: same bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="small_competition_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    synthetic.generate(folder / "comp", folder / "synthetic_hidden", seed, json.loads(cfg_json), jobs=1)
    return folder


def small_competition(root: Path, seed: int = 7, cfg: dict | None = None) -> Path:
    """``root/comp``: the competition folder (empty test_soundscapes/); the synthetic hidden half
    is generated beside it in ``root/synthetic_hidden`` and never read by real-data mode. A copy of
    the session's one generation per (seed, config), so tests may edit their folder."""
    made = generated(seed, json.dumps({**CFG, **(cfg or {})}, sort_keys=True))
    comp = root / "comp"
    shutil.copytree(made / "comp", comp, dirs_exist_ok=True)
    shutil.copytree(made / "synthetic_hidden", root / "synthetic_hidden", dirs_exist_ok=True)
    (comp / "test_soundscapes").mkdir()
    return comp


def fill_test_soundscapes(comp: Path, files: list[Path]) -> Path:
    """Copy hidden test files into ``comp/test_soundscapes`` (as Kaggle does during scoring)."""
    target = comp / "test_soundscapes"
    target.mkdir(exist_ok=True)
    for f in files:
        shutil.copy2(f, target / Path(f).name)
    return target
