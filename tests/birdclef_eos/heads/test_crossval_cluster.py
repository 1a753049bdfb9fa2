"""Folds as tasks on a Dask cluster: the bytes of the sequential run with the same thread count."""
import io

import numpy as np
import pandas as pd
import torch

from birdclef_eos.heads import crossval
from tests.fakes.toy_features import train_config

CONFIG = {"type": "attn", "channels": [4, 3], "n_classes": 3, "d": 8, "heads": 2, "ffn": 8, "dropout": 0.1}


def toy(n_folds=3, n_per_fold=24, k=3):
    rows = pd.DataFrame({"source": ["focal", "soundscape"] * (n_per_fold * n_folds // 2)})
    fold_of = np.repeat(np.arange(n_folds), n_per_fold)
    rng = np.random.default_rng(0)
    y = np.zeros((len(rows), k), dtype=np.float32)
    y[np.arange(len(rows)), np.arange(len(rows)) % k] = 1
    tokens = [torch.from_numpy((rng.normal(size=(len(rows), c)) + y[:, :1]).astype(np.float32)) for c in (4, 3)]
    return rows, tokens, y, fold_of


def run(client=None, seed=0):
    rows, tokens, y, fold_of = toy()
    curves = {}

    def logger(k):
        curves[k] = []
        return (lambda epoch, record: curves[k].append((epoch, record["loss"]))), (lambda: None)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    result = crossval.train_folds(rows, tokens, y, fold_of, CONFIG, train_config(epochs=3), 3, seed, 0.5,
                                  logger, client=client, threads=1)
    states = []
    for state in result.states:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        states.append(buffer.getvalue())
    return result.oof.tobytes(), states, result.folds, curves


def test_two_workers_train_the_sequential_folds_byte_for_byte(two_workers):
    sequential = run()
    clustered = run(two_workers.here())
    assert clustered[0] == sequential[0]          # OOF
    assert clustered[1] == sequential[1]          # every fold's state
    assert clustered[2] == sequential[2] and clustered[3] == sequential[3]  # records and curves
    assert len(sequential[3][0]) == 3
    # the comparison can fail: another seed moves the weights
    assert run(seed=1)[1] != sequential[1]
