"""The ViT's folds as cluster tasks: the bytes of the in-process folds, its init checkpoint loaded
by the picklable builder the vit stage hands to crossval.train_folds."""
import functools
import io

import numpy as np
import pandas as pd
import torch

from birdclef_eos.heads import crossval, vit
from tests.fakes.toy_features import train_config

CONFIG = dict(n_classes=3, image=16, patch=4, width=8, depth=1, heads=2, ffn=16, dropout=0.1)


def toy(n_folds=3, n_per_fold=12, k=3):
    rows = pd.DataFrame({"source": ["focal", "soundscape"] * (n_per_fold * n_folds // 2)})
    fold_of = np.repeat(np.arange(n_folds), n_per_fold)
    y = np.zeros((len(rows), k), dtype=np.float32)
    y[np.arange(len(rows)), np.arange(len(rows)) % k] = 1
    mels = np.random.default_rng(0).normal(size=(len(rows), 10, 12)) + 2 * y[:, :1, None]
    return rows, [vit.stack_mels(mels, np.arange(len(rows)))], y, fold_of


def run(init, client=None, seed=0):
    rows, tokens, y, fold_of = toy()
    curves = {}

    def logger(k):
        curves[k] = []
        # every field but the wall time, which no two runs share
        return (lambda epoch, record: curves[k].append((epoch, repr({f: v for f, v in record.items()
                                                                     if f != "seconds"})))), (lambda: None)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    build = functools.partial(vit.build_vit_from, init=str(init), resize=False)
    result = crossval.train_folds(rows, tokens, y, fold_of, CONFIG, train_config(epochs=2, batch_size=8), 3,
                                  seed, 0.5, logger, build=build, trained_folds=[0, 1], client=client, threads=1)
    states = []
    for state in result.states:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        states.append(buffer.getvalue())
    return result.oof.tobytes(), states, result.folds, curves


def test_two_workers_train_the_in_process_vit_folds_byte_for_byte(tmp_path, two_workers):
    torch.manual_seed(7)
    init = tmp_path / "init.pt"
    torch.save(vit.build_vit(CONFIG).state_dict(), init)
    sequential = run(init)
    clustered = run(init, two_workers.here())
    assert clustered == sequential                 # OOF, every fold's state, records, curves
    assert len(sequential[1]) == 2 and len(sequential[3][0]) == 2
    assert run(init, seed=1)[1] != sequential[1]   # the comparison can fail


def test_the_builder_loads_the_init_checkpoint(tmp_path):
    torch.manual_seed(7)
    source = vit.build_vit(CONFIG)
    torch.save(source.state_dict(), tmp_path / "init.pt")
    built = vit.build_vit_from(CONFIG, init=str(tmp_path / "init.pt"))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), built.state_dict().values()))
    assert not torch.equal(vit.build_vit_from(CONFIG).pos_embed, source.pos_embed)
