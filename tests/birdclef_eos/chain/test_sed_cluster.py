"""SED folds as cluster tasks: the bytes of the in-process folds. In-process the task gets the
log-mel array; on the cluster the path of its .npy (memory-mapped on the worker), as the sed stage
passes them (io/cluster.py `map_tasks`)."""
import io

import numpy as np
import pytest
import torch

from birdclef_eos.chain import sed
from birdclef_eos.heads.training import auc_or_nan, source_weights
from birdclef_eos.io.cluster import map_tasks

N, MELS, FRAMES, K, E = 36, 16, 24, 3, 5


def toy(tmp_path):
    rng = np.random.default_rng(0)
    y = np.zeros((N, K), np.float32)
    y[np.arange(N), np.arange(N) % K] = 1
    mels = (rng.normal(size=(N, MELS, FRAMES)) + 2 * y[:, :1, None]).astype(np.float16)
    np.save(tmp_path / "mels.npy", mels)
    labelled = np.arange(N) % 2 == 1
    return np.load(tmp_path / "mels.npy", mmap_mode="r"), y, labelled, rng.normal(size=(N, E)).astype(np.float32)


def folds(tmp_path, client=None, seed=0):
    mels, y, labelled, emb = toy(tmp_path)
    fold_of = np.arange(N) // (N // 3)   # every fold's labelled rows hold every class: a defined AUC
    test_idx = np.arange(0, N, 4)
    config = sed.SEDConfig(n_classes=K, d_distill=E, stem=4, widths=[4, 8], depths=[1, 1], strides=[1, 2],
                           expand=2, head=8)
    settings = sed.SEDTrainSettings(epochs=2, samples_per_epoch=24, batch_size=8)
    calls = [{"index": np.flatnonzero(~labelled | (fold_of != k)),
              "val_index": np.flatnonzero(labelled & (fold_of == k)), "seed": seed * 1000 + k, "threads": 1}
             for k in range(3)]
    done = map_tasks(client, sed.fold_task, calls,
                     shared={"config": config, "settings": settings,
                             "mels": mels if client is None else str(tmp_path / "mels.npy"), "y": y,
                             "is_soundscape": labelled, "target_emb": emb, "test_index": test_idx,
                             "sampler_weights": source_weights, "auc_fn": auc_or_nan})
    blobs = []
    for fold in done:
        buffer = io.BytesIO()
        torch.save(fold["state"], buffer)
        blobs.append((buffer.getvalue(), fold["oof"].tobytes(), fold["test"].tobytes(), repr(fold["curve"])))
    return blobs


def test_sed_folds_on_two_workers_give_the_in_process_bytes(tmp_path, two_workers):
    torch.use_deterministic_algorithms(True)
    sequential = folds(tmp_path)
    assert sequential[0][3].count("'epoch'") == 2 and "nan" not in sequential[0][3]   # two validated epochs
    assert folds(tmp_path, two_workers.here()) == sequential
    assert folds(tmp_path, seed=1) != sequential   # the comparison can fail


def test_a_task_names_a_log_mel_store_it_cannot_find(tmp_path):
    with pytest.raises(FileNotFoundError, match="same files at the same paths"):
        sed.open_mels(str(tmp_path / "absent.npy"))
