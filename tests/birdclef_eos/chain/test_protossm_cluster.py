"""ProtoSSM folds as cluster tasks: the bytes of the sequential folds."""
import functools
import io

import numpy as np
import torch

from birdclef_eos.chain import protossm as pssm
from birdclef_eos.heads.training import auc_or_nan
from birdclef_eos.io.cluster import open_client


def toy(files=9, T=12, E=6, K=3):
    rng = np.random.default_rng(0)
    y = (rng.random((files, T, K)) < 0.3).astype(np.float32)
    return {"emb": (rng.normal(size=(files, T, E)) + y[..., :1]).astype(np.float32), "y": y,
            "site": rng.integers(0, 4, files), "hour": rng.integers(0, 24, files), "logits": None}


def folds(client=None, seed=0):
    data = toy()
    config = pssm.ProtoSSMConfig(d_input=6, n_classes=3, d_model=8, n_sites=4, meta_dim=4, n_windows=12)
    settings = pssm.TrainSettings(epochs=3, patience=2, batch_files=4)
    fold_of = np.arange(9) % 3
    test = [toy(files=2)]
    calls = [(config, settings, data, fold_of == k, seed * 1000 + k, functools.partial(pssm.flat_auc, auc_or_nan),
              None, test, 1) for k in range(3)]
    if client is None:
        out = [pssm.fold_task(*c) for c in calls]
    else:
        out = [f.result() for f in [client.submit(pssm.fold_task, *c, pure=False) for c in calls]]
    blobs = []
    for fold in out:
        buffer = io.BytesIO()
        torch.save(fold["state"], buffer)
        blobs.append((buffer.getvalue(), fold["oof"].tobytes(), fold["test"][0].tobytes(), fold["curve"]))
    return blobs


def test_protossm_folds_on_two_workers_give_the_sequential_bytes():
    torch.use_deterministic_algorithms(True)
    sequential = folds()
    with open_client(None, 2) as client:
        assert folds(client) == sequential
    assert folds(seed=1) != sequential   # the comparison can fail
