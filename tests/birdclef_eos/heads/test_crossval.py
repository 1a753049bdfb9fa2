"""``cross_validate``: the sequence the train, student and sidecar stages share writes the folds' own
result (the OOF of ``train_folds``), the metrics it is given, the checkpoints and oof.csv."""
import json

import numpy as np
import pandas as pd
import torch

from birdclef_eos.heads import crossval
from tests.fakes.toy_features import train_config

LABELS = ["a", "b", "c"]
CONFIG = {"type": "attn", "channels": [4, 3], "n_classes": 3, "d": 8, "heads": 2, "ffn": 8, "dropout": 0.1}


def toy(n_folds=3, n_per_fold=12):
    n = n_folds * n_per_fold
    rows = pd.DataFrame({"source": ["focal", "soundscape"] * (n // 2), "row_id": [f"r{i}" for i in range(n)],
                         "primary_label": [LABELS[i % 3] for i in range(n)]})
    y = np.zeros((n, 3), dtype=np.float32)
    y[np.arange(n), np.arange(n) % 3] = 1
    rng = np.random.default_rng(0)
    tokens = [torch.from_numpy((rng.normal(size=(n, c)) + y[:, :1]).astype(np.float32)) for c in (4, 3)]
    return crossval.FoldData(rows=rows, y=y, fold_of=np.repeat(np.arange(n_folds), n_per_fold), tokens=tokens,
                             is_soundscape=(rows["source"] == "soundscape").to_numpy())


def test_writes_the_folds_result_metrics_checkpoints_and_oof(tmp_path):
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    data, config = toy(), train_config(epochs=2)
    out = crossval.Destinations(tmp_path / "metrics", tmp_path / "models", tmp_path / "oof")
    result, metrics = crossval.cross_validate(
        data, LABELS, CONFIG, config, 3, 0, 0.5, out, lambda r: {"n_folds": len(r.states),
                                                                    **crossval.summary(data, r, LABELS)},
        {"model": CONFIG, "n_folds": 3}, scheduler=None, workers=1, threads=1)
    direct = crossval.train_folds(data.rows, data.tokens, data.y, data.fold_of, CONFIG, config, 3, 0, 0.5,
                                  lambda k: ((lambda e, r: None), (lambda: None)))
    assert np.array_equal(result.oof, direct.oof)  # the same folds, seeds and rows as a direct call
    assert json.loads((out.metrics / "metrics.json").read_text()) == metrics
    assert metrics["n_folds"] == 3 and metrics["n_labelled_chunks"] == 18 and len(metrics["folds"]) == 3
    assert sorted(p.name for p in (out.metrics / "curves").iterdir())  # DVCLive curves, one folder per fold
    assert sorted(p.name for p in out.models.iterdir()) == ["config.json", "fold_0.pt", "fold_1.pt", "fold_2.pt"]
    assert json.loads((out.models / "config.json").read_text()) == {"model": CONFIG, "n_folds": 3}
    oof = pd.read_csv(out.oof / "oof.csv")
    assert list(oof.columns) == ["row_id", *LABELS]
    assert oof["row_id"].tolist() == data.rows.loc[data.is_soundscape, "row_id"].tolist()
    assert np.allclose(oof[LABELS].to_numpy(), result.oof[data.is_soundscape], rtol=1e-5)
