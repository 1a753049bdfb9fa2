"""The `sidecar` stage on a toy store: it trains on the sidecar's embedding (the main
store's through the default mode's pointer, or a store of its own in real-data mode) and writes its
head, OOF, metrics and a raw TTA submission over every test chunk."""
import json

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.data import features
from birdclef_eos.scoring import submission
from stages import sidecar, sidecar_features
from tests.fakes import toy_features
from tests.fakes.runtime import runtime

OPTIM = {"epochs": 2, "patience": 1, "min_delta": 0.0, "batch_size": 32, "lr": 0.003, "weight_decay": 0.01,
         "mixup_alpha": 0.2, "samples_per_epoch": None}


def params() -> dict:
    return {"runtime": runtime(), "backbone": {"name": "birdnet_v24"},
            "train": {"seed": 0, "threads": 1, "n_folds": 2, "fold_salt": "s", "secondary_weight": 1.0},
            "sidecar": {"head": {"type": "attn", "soundscape_fraction": 0.2,
                                 "model": {"d": 16, "heads": 2, "ffn": 32, "dropout": 0.0},
                                 "optim": OPTIM, "tta": [-1.0, 0.0, 1.0]}}}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = toy_features.species_names(4)
    windows = toy_features.toy_windows(4, n_recordings=16, windows_per_recording=2, n_soundscapes=8, rng=rng)
    windows = windows[(windows["source"] == "focal") | (windows["shift_s"] == 0)]
    test = [dict(source="test", file_id=f"T{t}", start_s=5.0 * c + s, shift_s=s, row_id=f"T{t}_{5 * (c + 1)}",
                 chunk=c, split="test", primary_label="", labels="", secondary_labels="", site="S00", hour=6)
            for t in range(2) for c in range(12) for s in (-1.0, 0.0, 1.0)]
    windows = pd.concat([windows, pd.DataFrame(test)], ignore_index=True)
    arrays = toy_features.toy_block_features(windows, labels, [4], 1.0, rng)
    features.save(tmp_path / "data/features", windows, arrays, {"blocks": [0], "channels": {"embedding": 10}})
    index = tmp_path / "data/index"
    index.mkdir(parents=True)
    pd.DataFrame({"label_idx": range(4), "primary_label": labels}).to_csv(index / "species.csv", index=False)
    chunks = windows[(windows["source"] != "focal") & (windows["shift_s"] == 0)]
    chunks = chunks[["row_id", "file_id", "chunk", "split", "site", "hour", "labels"]]
    chunks.rename(columns={"file_id": "soundscape_id"}).to_csv(index / "chunks.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_mode_trains_on_the_main_embedding_and_submits(tree):
    sidecar_features.run(params())  # the default mode's pointer
    out = sidecar.run(params())
    m = json.loads((tree / "build/metrics/sidecar/metrics.json").read_text())
    assert m["features"]["mode"] == "reuse" and m["channels"] == [10] and 0 <= m["oof_macro_auc"] <= 1
    assert len(m["folds"]) == 2 and m["n_labelled_chunks"] == 6 * 12
    config = json.loads((tree / "models/heads/sidecar/config.json").read_text())
    assert config["tokens"] == ["embedding"] and sorted(p.name for p in (tree / "models/heads/sidecar").glob("*.pt")) \
        == ["fold_0.pt", "fold_1.pt"]
    assert len(pd.read_csv(tree / "predictions/oof/sidecar/oof.csv")) == 6 * 12
    sub = submission.read(tree / "submissions/sidecar/submission.csv")
    assert len(sub) == 24 and list(sub.columns[1:]) == toy_features.species_names(4)
    manifest = json.loads((tree / "submissions/sidecar/manifest.json").read_text())
    assert manifest["tta"] == [-1.0, 0.0, 1.0] and manifest["postprocess"] == {} and out.submission.endswith("sidecar")


def test_real_data_mode_trains_on_its_own_store(tree):
    """A sidecar store of its own (BirdNET's width there; 16 here) is what the head reads."""
    windows, _, _ = features.load(tree / "data/features", names=[])
    rng = np.random.default_rng(1)
    own = toy_features.toy_block_features(windows, toy_features.species_names(4), [], 1.0, rng, embedding_dim=16)
    features.save(tree / "data/sidecar_features", windows, own, {"mode": "extract", "backbone": "birdnet_v24"})
    sidecar.run(params())
    m = json.loads((tree / "build/metrics/sidecar/metrics.json").read_text())
    assert m["channels"] == [16] and m["features"]["mode"] == "extract"


def test_same_params_same_bytes(tree):
    sidecar_features.run(params())
    outputs = ("submissions/sidecar/submission.csv", "predictions/oof/sidecar/oof.csv",
               "models/heads/sidecar/fold_0.pt", "models/heads/sidecar/fold_1.pt")
    sidecar.run(params())
    first = {p: (tree / p).read_bytes() for p in outputs}
    sidecar.run(params())
    assert {p: (tree / p).read_bytes() for p in outputs} == first
