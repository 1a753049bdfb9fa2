import numpy as np
import pandas as pd
import pytest
import torch

from birdclef_eos.heads import crossval, training
from birdclef_eos.heads import pseudo
from birdclef_eos.heads.pseudo import PseudoError
from tests.fakes.toy_features import train_config


def test_all_off_returns_the_labels_unchanged():
    probs = np.array([[0.1, 0.7], [0.03, 0.02]], dtype=np.float32)
    kept, labels = pseudo.transform(probs)
    assert kept.all() and np.array_equal(labels, probs) and labels.dtype == probs.dtype


def test_gate_floor_power_on_hand_computed_cases():
    probs = np.array([[0.9, 0.2, 0.04], [0.3, 0.1, 0.2], [0.5, 0.6, 0.1]])
    kept, labels = pseudo.transform(probs, gate=0.5)
    assert kept.tolist() == [True, False, True] and np.allclose(labels, probs[[0, 2]])
    _, labels = pseudo.transform(probs, floor=0.15)
    assert np.allclose(labels, [[0.9, 0.2, 0.0], [0.3, 0.0, 0.2], [0.5, 0.6, 0.0]])
    _, labels = pseudo.transform(probs, power=2.0)
    assert np.allclose(labels, probs ** 2)
    kept, labels = pseudo.transform(probs, gate=0.55, floor=0.15, power=0.5)  # gate on the raw top probability
    assert kept.tolist() == [True, False, True]
    assert np.allclose(labels, [[0.9 ** 0.5, 0.2 ** 0.5, 0.0], [0.5 ** 0.5, 0.6 ** 0.5, 0.0]])


@pytest.mark.parametrize("kw,match", [({"gate": 1.5}, "pseudo.gate"), ({"floor": -0.1}, "pseudo.floor"),
                                      ({"power": 0.0}, "pseudo.power")])
def test_bad_knobs_are_named(kw, match):
    with pytest.raises(PseudoError, match=match):
        pseudo.transform(np.ones((1, 2)) * 0.5, **kw)


def test_fold_labels_ensemble_and_fold():
    per_fold = np.stack([np.full((4, 3), k, dtype=np.float32) for k in range(5)])
    assert np.allclose(pseudo.fold_labels(per_fold, "ensemble", 3), 2.0)
    assert np.allclose(pseudo.fold_labels(per_fold, "fold", 3), 3.0)
    with pytest.raises(PseudoError, match="pseudo.mode"):
        pseudo.fold_labels(per_fold, "teacher", 0)


def test_mixture_75_15_10_within_tolerance_over_many_batches():
    source = np.array(["focal"] * 700 + ["soundscape"] * 40 + ["pseudo"] * 260)
    w = pseudo.mixture_weights(source, {"focal": 0.75, "soundscape": 0.15, "pseudo": 0.10})
    order = np.array(list(training.make_sampler(w, 200 * 64, torch.Generator().manual_seed(0))))
    drawn = source[order].reshape(200, 64)
    for name, share in (("focal", 0.75), ("soundscape", 0.15), ("pseudo", 0.10)):
        assert abs((drawn == name).mean() - share) < 0.01, name


@pytest.mark.parametrize("shares,match", [({"focal": 0.8, "pseudo": 0.1}, "sum to 1"),
                                          ({"focal": 0.9, "web": 0.1}, "unknown sources")])
def test_shares_are_validated(shares, match):
    with pytest.raises(PseudoError, match=match):
        pseudo.check_fractions(shares)


def test_summary_counts():
    per_fold = np.array([[[0.9, 0.6], [0.1, 0.2]], [[0.7, 0.2], [0.3, 0.2]]])
    s = pseudo.summary(per_fold, np.array(["a", "a"]))
    assert s["chunks"] == 2 and s["files"] == 1
    assert s["labels_per_chunk_above_0_5"] == 0.5       # mean: [[0.8, 0.4], [0.2, 0.2]]
    assert s["mean_top_confidence"] == pytest.approx(0.5)


def toy_rows(n_per_fold=6, n_folds=3, k=2):
    rows = pd.DataFrame({"source": ["focal", "soundscape"] * (n_per_fold * n_folds // 2)})
    fold_of = np.repeat(np.arange(n_folds), n_per_fold)
    rng = np.random.default_rng(0)
    y = np.zeros((len(rows), k), dtype=np.float32)
    y[np.arange(len(rows)), np.arange(len(rows)) % k] = 1
    tokens = [torch.from_numpy(rng.normal(size=(len(rows), 4)).astype(np.float32))]
    return rows, tokens, y, fold_of


def captured_targets(monkeypatch, mode, per_fold, gate=0.0, floor=0.0, power=1.0):
    """Run train_folds with a fake train_fold that records the pseudo rows' targets of each fold."""
    rows, tokens, y, fold_of = toy_rows(n_folds=len(per_fold))
    n_labelled = {}
    seen = {}

    def fake_train_fold(model, tr_tokens, targets, weights, val_tokens, val_targets, config, seed, log=None, desc=""):
        k = seed % 1000
        seen[k] = targets.numpy()[n_labelled[k]:]
        return model.eval(), [{"best_epoch": 0, "val_macro_auc": float("nan")}]

    monkeypatch.setattr(training, "train_fold", fake_train_fold)
    p_tokens = [torch.zeros(per_fold.shape[1], 4)]

    def pseudo_fold(k):
        n_labelled[k] = int((fold_of != k).sum())
        kept, soft = pseudo.transform(pseudo.fold_labels(per_fold, mode, k), gate, floor, power)
        return crossval.pick(p_tokens, kept), soft

    crossval.train_folds(rows, tokens, y, fold_of, {"type": "attn", "channels": [4], "n_classes": 2, "d": 8,
                                                     "heads": 2, "ffn": 8, "dropout": 0.0},
                         train_config(epochs=1), len(per_fold), 0, 0.15, lambda k: (None, lambda: None),
                         pseudo=pseudo_fold, sources={"focal": 0.75, "soundscape": 0.15, "pseudo": 0.10})
    return seen


def test_fold_mode_student_fold_k_sees_only_teacher_fold_k(monkeypatch):
    per_fold = np.stack([np.full((5, 2), (k + 1) / 10, dtype=np.float32) for k in range(3)])  # fold k predicts a constant
    seen = captured_targets(monkeypatch, "fold", per_fold)
    assert sorted(seen) == [0, 1, 2]
    for k, t in seen.items():
        assert t.shape == (5, 2) and np.allclose(t, (k + 1) / 10), k
    seen = captured_targets(monkeypatch, "ensemble", per_fold)
    for k, t in seen.items():
        assert np.allclose(t, 0.2), k


def test_soft_labels_reach_the_loss_unchanged_when_all_off(monkeypatch):
    rng = np.random.default_rng(1)
    teacher = rng.uniform(size=(3, 7, 2)).astype(np.float32)
    seen = captured_targets(monkeypatch, "ensemble", teacher)
    for t in seen.values():
        assert np.array_equal(t, teacher.mean(axis=0))
    seen = captured_targets(monkeypatch, "fold", teacher)
    for k, t in seen.items():
        assert np.array_equal(t, teacher[k])
