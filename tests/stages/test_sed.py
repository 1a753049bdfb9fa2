"""The sed stage on a toy spectrogram and feature store: on two Dask workers (the session's local
cluster as `runtime.scheduler`, tests/conftest.py) its folds are cluster tasks (each reading mels.npy by path) and every output file is the in-process one."""
import hashlib
from pathlib import Path

import numpy as np

from birdclef_eos.data import features
from tests.stages.test_vit import toy_spectrograms
from tests.fakes.runtime import runtime

OUTPUTS = ("models/chain/sed", "predictions/chain/sed", "build/metrics/sed")


def params(runtime: dict) -> dict:
    return {"runtime": runtime, "train": {"fold_salt": "s"},
            "base": {"sed": {"folds": 2, "stem": 4, "widths": [4, 8], "depth": 1, "downsample": 1, "expand": 2,
                             "head": 8, "dropout": 0.1, "epochs": 2, "samples_per_epoch": 32, "batch_size": 16,
                             "lr": 0.002, "weight_decay": 0.01, "soundscape_fraction": 0.2, "distill_weight": 1.0,
                             "secondary_weight": 1.0, "smooth_sigma": 0.65, "seed": 0, "threads": 1}}}


def digests() -> dict[str, str]:
    return {f.as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for folder in OUTPUTS for f in sorted(Path(folder).rglob("*")) if f.is_file()}


def test_two_local_workers_write_the_in_process_bytes(tmp_path, monkeypatch, two_workers):
    from stages import sed
    monkeypatch.chdir(tmp_path)
    windows = toy_spectrograms(tmp_path)
    emb = np.random.default_rng(1).normal(size=(len(windows), 6)).astype(np.float32)
    features.save(tmp_path / "data/features", windows, {"embedding": emb}, {})
    first = sed.run(params(runtime(workers=1))).metrics
    before = digests()
    assert first["oof_macro_auc"] is not None and len(first["fold_records"]) == 2
    assert any(f.endswith("fold_1.pt") for f in before) and any(f.endswith("oof.csv") for f in before)
    second = sed.run(params(two_workers.runtime())).metrics
    # the metrics file holds a throughput (samples/s, wall time): every other byte is the same
    strip = {k: v for k, v in digests().items() if not k.endswith("metrics.json")}
    assert strip == {k: v for k, v in before.items() if not k.endswith("metrics.json")}
    assert {k: v for k, v in second.items() if k != "train_samples_per_s"} == \
        {k: v for k, v in first.items() if k != "train_samples_per_s"}
