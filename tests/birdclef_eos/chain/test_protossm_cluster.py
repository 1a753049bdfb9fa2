"""ProtoSSM folds as cluster tasks: the bytes of the sequential folds, with the data passed as the
stage passes it (io/cluster.py `map_tasks`: sequences and test sequences shared, each fold's call
its mask and seed)."""
import functools
import io

import numpy as np
import torch

from birdclef_eos.chain import protossm as pssm
from birdclef_eos.heads.training import auc_or_nan
from birdclef_eos.io.cluster import map_tasks


def toy(files=9, T=12, E=6, K=3):
    rng = np.random.default_rng(0)
    y = (rng.random((files, T, K)) < 0.3).astype(np.float32)
    return {"emb": (rng.normal(size=(files, T, E)) + y[..., :1]).astype(np.float32), "y": y,
            "site": rng.integers(0, 4, files), "hour": rng.integers(0, 24, files), "logits": None}


def folds(client=None, seed=0):
    config = pssm.ProtoSSMConfig(d_input=6, n_classes=3, d_model=8, n_sites=4, meta_dim=4, n_windows=12)
    settings = pssm.TrainSettings(epochs=3, patience=2, batch_files=4)
    fold_of = np.arange(9) % 3
    done = map_tasks(client, pssm.fold_task,
                     [{"val": fold_of == k, "seed": seed * 1000 + k, "threads": 1} for k in range(3)],
                     shared={"config": config, "settings": settings, "data": toy(),
                             "auc_fn": functools.partial(pssm.flat_auc, auc_or_nan), "focal": None,
                             "test": [toy(files=2)]})
    blobs = []
    for fold in done:
        buffer = io.BytesIO()
        torch.save(fold["state"], buffer)
        blobs.append((buffer.getvalue(), fold["oof"].tobytes(), fold["test"][0].tobytes(), fold["curve"]))
    return blobs


def test_protossm_folds_on_two_workers_give_the_sequential_bytes(two_workers):
    torch.use_deterministic_algorithms(True)
    sequential = folds()
    assert folds(two_workers.here()) == sequential
    assert folds(seed=1) != sequential   # the comparison can fail
