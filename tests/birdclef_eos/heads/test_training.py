import json

import numpy as np
import pandas as pd
import pytest
import torch

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from tests.fakes import toy_features
from tests.fakes.toy_features import train_config
from tests.fakes.runtime import runtime
from birdclef_eos.heads import training


def test_sampler_fractions_within_tolerance():
    is_sc = np.r_[np.zeros(900, bool), np.ones(100, bool)]
    w = training.source_weights(is_sc, 0.2)
    drawn = np.array(list(training.make_sampler(w, 20000, torch.Generator().manual_seed(0))))
    assert abs(is_sc[drawn].mean() - 0.2) < 0.015


def test_zero_fraction_never_draws_soundscape():
    is_sc = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    drawn = np.array(list(training.make_sampler(training.source_weights(is_sc, 0.0), 2000,
                                                torch.Generator().manual_seed(0))))
    assert not is_sc[drawn].any()


def test_fraction_without_soundscape_rows_is_an_error():
    with pytest.raises(training.TrainingError, match="no labelled soundscape"):
        training.source_weights(np.zeros(10, bool), 0.2)


def test_mixup_uses_one_lambda_for_features_and_labels():
    # one-hot rows make each mixed row reveal its lambda and its partner
    n = 16
    x = [torch.eye(n), 3 * torch.eye(n)]
    y = torch.rand(n, 5, generator=torch.Generator().manual_seed(1))
    mixed, my, lam = training.mixup(x, y, 0.2, torch.Generator().manual_seed(3))
    assert 0.0 < lam < 1.0 and lam != 0.5
    own = torch.arange(n)
    partner = torch.where(mixed[0] * (1 - torch.eye(n)) > 0, 1, 0).argmax(dim=1)
    mixed_with_other = (mixed[0] * (1 - torch.eye(n))).sum(dim=1) > 0
    expected_self = torch.where(mixed_with_other, torch.tensor(lam), torch.tensor(1.0))
    assert torch.allclose(mixed[0][own, own], expected_self, atol=1e-6)
    assert torch.allclose(mixed[1], 3 * mixed[0], atol=1e-5)
    partner = torch.where(mixed_with_other, partner, own)
    assert torch.allclose(my, lam * y + (1 - lam) * y[partner], atol=1e-6)


def test_mixup_alpha_zero_is_identity():
    x, y = [torch.randn(4, 3)], torch.ones(4, 2)
    mixed, my, lam = training.mixup(x, y, 0.0, torch.Generator())
    assert lam == 1.0 and mixed[0] is x[0] and my is y


def test_targets_primary_and_secondary():
    w = pd.DataFrame({"labels": ["a", "b;c", ""], "secondary_labels": ["b", "", "a"]})
    y = training.targets_matrix(w, ["a", "b", "c"], 0.5)
    assert y.tolist() == [[1, 0.5, 0], [0, 1, 1], [0.5, 0, 0]]


def test_unknown_label_is_named():
    w = pd.DataFrame({"labels": ["zz"], "secondary_labels": [""]})
    with pytest.raises(training.TrainingError, match="row 0.*'zz'"):
        training.targets_matrix(w, ["a"], 1.0)


def tiny_fold(seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(0)
    n, ch = 96, [5, 7, 7]
    x = [torch.from_numpy(rng.normal(size=(n, c)).astype(np.float32)) for c in ch]
    y = torch.from_numpy((rng.random((n, 4)) < 0.3).astype(np.float32))
    model = heads.build_head({"type": "attn", "channels": ch, "n_classes": 4, "d": 16, "heads": 2,
                              "ffn": 32, "dropout": 0.1})
    cfg = train_config(epochs=3, patience=5, batch_size=16)
    best, history = training.train_fold(model, x, y, np.full(n, 1 / n), [t[:32] for t in x],
                                        y[:32].numpy(), cfg, seed=seed)
    return best, history


def test_two_runs_give_identical_weights():
    torch.use_deterministic_algorithms(True)
    a, ha = tiny_fold(0)
    b, hb = tiny_fold(0)
    c, _ = tiny_fold(1)
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in ha] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in hb]
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_early_stopping_keeps_the_best_epoch():
    _, history = tiny_fold(0)
    assert len(history) <= 3 and all("val_macro_auc" in h for h in history)


def test_history_says_which_epoch_is_kept_and_why_training_stopped():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, ch = 64, [5, 7, 7]
    x = [torch.from_numpy(rng.normal(size=(n, c)).astype(np.float32)) for c in ch]
    y = torch.from_numpy((rng.random((n, 4)) < 0.3).astype(np.float32))
    model = heads.build_head({"type": "attn", "channels": ch, "n_classes": 4, "d": 8, "heads": 2,
                              "ffn": 16, "dropout": 0.0})
    # lr 0: the validation AUC never changes, so only epoch 0 counts as an improvement
    cfg = train_config(epochs=10, patience=2, batch_size=16, lr=0.0, mixup_alpha=0.0)
    _, history = training.train_fold(model, x, y, np.full(n, 1 / n), [t[:32] for t in x],
                                     y[:32].numpy(), cfg, seed=0)
    assert [h["best_epoch"] for h in history] == [0, 0, 0]
    assert [h["stop"] for h in history] == [None, None, "early"]


def test_train_stage_writes_the_contract(tmp_path, monkeypatch):
    from stages import train
    monkeypatch.chdir(tmp_path)
    windows, arrays, meta, species = toy_features.toy_store(n_species=4, n_recordings=30, n_soundscapes=10)
    features.save("data/features", windows, arrays, meta)
    (tmp_path / "data/index").mkdir(parents=True)
    species.to_csv("data/index/species.csv", index=False)
    (tmp_path / "build/metrics/probe").mkdir(parents=True)
    (tmp_path / "build/metrics/probe/probe.json").write_text(json.dumps({"blocks": {
        f"block_{i:02d}": {"accuracy": a, "rank": r} for i, (a, r) in enumerate([(0.3, 3), (0.6, 1), (0.5, 2)])}}))
    params = {"runtime": runtime(), "train": {
        "blocks": [0, 1, 2], "seed": 0, "threads": 1, "n_folds": 3, "fold_salt": "s", "secondary_weight": 1.0,
        "model": {"d": 8, "heads": 2, "ffn": 16, "dropout": 0.1},
        "optim": {"epochs": 2, "patience": 1, "min_delta": 0.0, "batch_size": 32, "lr": 0.003, "weight_decay": 0.01,
                  "mixup_alpha": 0.2, "samples_per_epoch": None, "mix_lr_scale": 10.0},
        "variants": {"scalarmix": {"head": "scalarmix", "soundscape_fraction": 0.0,
                                   "table": "probe_vs_weights"}}}}
    result = train.run(params, "scalarmix")
    m = json.loads((tmp_path / "build/metrics/train/scalarmix/metrics.json").read_text())
    assert len(m["block_weights"]["per_fold"]) == 3 and m["n_params"] > 0
    assert 0 <= m["oof_macro_auc"] <= 1
    oof = pd.read_csv(tmp_path / "predictions/oof/scalarmix/oof.csv")
    labelled = windows[(windows["split"] == "labelled") & (windows["shift_s"] == 0)]
    assert sorted(oof["row_id"]) == sorted(labelled["row_id"])
    assert list(oof.columns) == ["row_id"] + species["primary_label"].tolist()
    models, config = heads.load_variant(tmp_path / "models/heads/scalarmix")
    assert len(models) == 3 and config["labels"] == species["primary_label"].tolist()
    assert "Spearman" in (tmp_path / "build/tables/probe_vs_weights.md").read_text()
    assert (tmp_path / "build/metrics/train/scalarmix/curves/fold_0/plots/metrics/loss.tsv").exists()
    assert result.table and m["blocks"] == [0, 1, 2]
    # the block choice is train's: one block read, nothing upstream touched
    params["train"]["blocks"] = [1]
    one = train.run(params, "scalarmix").metrics
    assert one["blocks"] == [1] and one["channels"] == [arrays["block_01"].shape[1]]
    (tmp_path / "models/probe_selected.json").write_text(json.dumps({"blocks": [2, 0]}))
    assert train.head_tokens("auto", [0, 1, 2]) == ["block_00", "block_02"]
    with pytest.raises(train.TrainStageError, match="not in"):
        train.head_tokens([7], [0, 1, 2])
    # a variant's own `blocks` overrides train.blocks: the embedding as one token
    params["train"]["variants"]["abl_embedding"] = {"head": "attn", "soundscape_fraction": 0.2,
                                                    "table": "ablation/abl_embedding", "blocks": "embedding"}
    emb = train.run(params, "abl_embedding")
    assert emb.metrics["blocks"] == ["embedding"] and emb.metrics["channels"] == [arrays["embedding"].shape[1]]
    _, config = heads.load_variant(tmp_path / "models/heads/abl_embedding")
    assert config["tokens"] == ["embedding"]
    assert "final embedding" in (tmp_path / "build/tables/ablation/abl_embedding.md").read_text()


def test_symbolic_block_choices_resolve_on_a_toy_store():
    from stages.train import TrainStageError, resolve_tokens
    _, _, meta, _ = toy_features.toy_store(channels=(4, 4, 4, 4, 4, 4))
    known = meta["blocks"]                                  # 0..5
    probe = {f"block_{i:02d}": {"accuracy": a, "rank": r}
             for i, (a, r) in enumerate([(.1, 6), (.5, 2), (.2, 5), (.9, 1), (.3, 4), (.4, 3)])}
    assert resolve_tokens("auto", known, selected=[5, 3, 1]) == ["block_01", "block_03", "block_05"]
    assert resolve_tokens("last3", known) == ["block_03", "block_04", "block_05"]
    assert resolve_tokens("embedding", known) == ["embedding"]
    assert resolve_tokens("best1", known, probe_scores=probe) == ["block_03"]
    assert resolve_tokens("all", known) == [f"block_{i:02d}" for i in range(6)]
    assert resolve_tokens([4, 0], known) == ["block_00", "block_04"]
    # best1 among the extracted blocks only; auto without the probe's file is an error
    assert resolve_tokens("best1", [0, 1, 2], probe_scores=probe) == ["block_01"]
    with pytest.raises(TrainStageError, match="auto"):
        resolve_tokens("auto", known)
    with pytest.raises(TrainStageError, match="best1"):
        resolve_tokens("best1", known, probe_scores={})
