"""What a Kaggle kernel runs: audio of the test soundscapes -> a submission, with the pipeline's own code.

The same functions as the `extract` and `predict` stages, in the same order: the soundscape table and
its chunks (data/birdclef.py), the window plan (data/plans.py), the probed backbone (backbone/runner.py,
audio/windows.py), the head's fold models at every TTA shift (heads/inference.py), the TTA average,
the site/hour prior fitted on the labelled chunks shipped with the model folder, and the
post-processing (scoring/postprocess.py). So a bundle's submission equals the pipeline's
submissions/<name>/submission.csv for the same files (up to the last bits of the backbone's batches).

A bundle's ``kind`` picks the function that makes its probabilities (``KINDS``): ``predict`` is one
trained head with TTA and post-processing (the predict stage's submissions); a blend registers
another kind here.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from birdclef_eos.audio.windows import forward
from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.data import birdclef
from birdclef_eos.data.features import WINDOW_COLUMNS
from birdclef_eos.data.plans import soundscape_windows
from birdclef_eos.heads import models as heads
from birdclef_eos.heads.inference import predict_shifts
from birdclef_eos.scoring import postprocess, submission


class BundleError(ValueError):
    pass


def soundscape_chunks(test_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(soundscapes, chunks) of every audio file in ``test_dir``, split ``test``, as the index has them."""
    scapes = birdclef.read_soundscapes(Path(test_dir), default_split="test")
    if scapes.empty:
        raise BundleError(f"{test_dir}: no test soundscapes (.ogg, .flac, .wav); on Kaggle they appear only "
                          "when the kernel is scored")
    scapes = scapes.assign(path=[str(f) for f in scapes.file])
    chunks = birdclef.chunk_table(scapes, pd.DataFrame(columns=["soundscape_id", "chunk", "labels"]))
    return scapes, chunks


def predict_kind(root: Path, cfg: dict, test_dir: Path) -> pd.DataFrame:
    """One head, TTA, post-processing: a predict-stage submission (row_id + one column per label)."""
    files = cfg["files"]
    species = pd.read_csv(root / files["species"], keep_default_na=False).sort_values("label_idx")
    labels = species["primary_label"].astype(str).tolist()
    models, config = heads.load_variant(root / files["head"])
    names = config.get("tokens") or [f"block_{i:02d}" for i in config["blocks"]]
    scapes, chunks = soundscape_chunks(test_dir)
    shifts = [float(s) for s in cfg["tta"]]
    plan = soundscape_windows(scapes, chunks, shifts)
    b = cfg["backbone"]
    runner = Backbone(root / files["probed_onnx"], root / files["backbone_json"], root / files["blocks_json"],
                      threads=b["threads"], batch_size=b["batch_size"], chunk_mapping=b["chunk_mapping"],
                      input_rate=b["sample_rate"], blocks=[n for n in names if n.startswith("block_")],
                      progress=False, frontend=b["frontend"], provider="cpu")
    kept, arrays, _ = forward(runner, plan, names, b["batch_windows"], b["on_bad_audio"], b["sample_rate"],
                             desc="backbone")
    windows = plan[kept][WINDOW_COLUMNS].reset_index(drop=True)
    rows, per_shift = predict_shifts(models, windows, arrays, names, shifts)
    knobs = postprocess.Knobs(**cfg["knobs"])
    probs = postprocess.average_shifts(per_shift, knobs.tta_space)
    prior = None
    if knobs.prior_alpha:
        train_chunks = pd.read_csv(root / files["prior_chunks"], keep_default_na=False,
                                   dtype={"labels": str, "site": str})
        prior = postprocess.fit_prior(train_chunks, labels)
    probs = postprocess.postprocess(probs, rows, knobs, prior=prior, species=species)
    order = pd.DataFrame({"row_id": chunks["row_id"].astype(str)}).assign(**{c: 0.0 for c in labels})
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


KINDS: dict[str, Callable[[Path, dict, Path], pd.DataFrame]] = {"predict": predict_kind}


def run_bundle(root: str | Path, name: str, test_dir: str | Path) -> pd.DataFrame:
    """The submission of bundle ``name`` of the model folder ``root`` for the files in ``test_dir``."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    if name not in manifest["bundles"]:
        raise BundleError(f"{root}/manifest.json: no bundle '{name}' (has {sorted(manifest['bundles'])})")
    cfg = manifest["bundles"][name]
    if cfg["kind"] not in KINDS:
        raise BundleError(f"bundle '{name}': kind '{cfg['kind']}' is not one of {sorted(KINDS)}")
    sub = KINDS[cfg["kind"]](root / "files", cfg, Path(test_dir))
    if not np.isfinite(sub.iloc[:, 1:].to_numpy(dtype=float)).all():
        raise BundleError(f"bundle '{name}': non-finite probabilities")
    return sub
