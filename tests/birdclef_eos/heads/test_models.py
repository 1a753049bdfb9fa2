import json

import numpy as np
import pytest
import torch

from birdclef_eos.heads import models as heads

PAPER = dict(channels=[232, 384, 384], n_classes=234, d=256, heads=4, ffn=512, dropout=0.1)


def hand_count(channels, d, ffn, k):
    projections = sum(c * d + d + 2 * d for c in channels)   # Linear + LayerNorm
    block_embedding, cls = len(channels) * d, d
    attention = 3 * d * d + 3 * d + d * d + d               # in_proj + out_proj
    norms = 3 * 2 * d                                        # pre-attention, pre-FFN, final
    feed_forward = d * ffn + ffn + ffn * d + d
    classifier = d * k + k
    return projections + block_embedding + cls + attention + norms + feed_forward + classifier


def tokens(batch, channels):
    return [torch.randn(batch, c) for c in channels]


@pytest.mark.parametrize("kind", heads.HEAD_TYPES)
def test_output_shapes(kind):
    model = heads.build_head({"type": kind, **PAPER}).eval()
    assert model(tokens(7, PAPER["channels"])).shape == (7, 234)


def test_attention_pool_counts_the_hand_count():
    model = heads.build_head({"type": "attn", **PAPER})
    assert heads.count_parameters(model) == hand_count([232, 384, 384], 256, 512, 234) == 847_082


def test_scalar_mix_counts_the_hand_count():
    model = heads.build_head({"type": "scalarmix", **PAPER})
    projections = sum(c * 256 + 256 for c in PAPER["channels"])  # LayerNorm without affine
    assert heads.count_parameters(model) == projections + 3 + 256 * 234 + 234


def test_cls_only_query_equals_full_block():
    model = heads.build_head({"type": "attn", **PAPER}).eval()
    x = tokens(5, PAPER["channels"])
    z = torch.stack([p(t) for p, t in zip(model.proj, x)], 1) + model.block_embedding
    seq = torch.cat([model.cls.expand(5, -1, -1), z], 1)
    h = model.norm_attn(seq)
    seq = seq + model.attn(h, h, h)[0]
    seq = seq + model.ffn(model.norm_ffn(seq))
    full = model.classifier(model.norm_out(seq[:, 0]))
    assert torch.allclose(full, model(x), atol=1e-5)


def test_residual_replaces_last_token_by_difference():
    model = heads.build_head({"type": "residual", **PAPER}).eval()
    plain = heads.build_head({"type": "attn", **PAPER}).eval()
    plain.load_state_dict(model.state_dict())
    x = tokens(4, PAPER["channels"])
    expected = plain([x[0], x[1], x[2] - x[1]])
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert not torch.allclose(model(x), plain(x))


def test_residual_needs_equal_widths():
    with pytest.raises(heads.HeadError, match="same width"):
        heads.build_head({"type": "residual", **PAPER, "channels": [232, 232, 384]})


def test_wrong_token_width_is_named():
    model = heads.build_head({"type": "attn", **PAPER})
    with pytest.raises(heads.HeadError, match="block tensor 1"):
        model([torch.randn(2, 232), torch.randn(2, 100), torch.randn(2, 384)])


def test_block_weights_sum_to_one():
    model = heads.build_head({"type": "scalarmix", **PAPER})
    assert float(model.block_weights().detach().sum()) == pytest.approx(1.0)


def test_load_variant_and_predict_proba_average_folds(tmp_path):
    config = {"type": "attn", "channels": [4, 6, 6], "n_classes": 3, "d": 8, "heads": 2, "ffn": 16,
              "dropout": 0.0}
    models = []
    for k in range(2):
        torch.manual_seed(k)
        m = heads.build_head(config).eval()
        torch.save(m.state_dict(), tmp_path / f"fold_{k}.pt")
        models.append(m)
    (tmp_path / "config.json").write_text(json.dumps({"model": config, "n_folds": 2, "blocks": [0, 1, 2]}))
    loaded, cfg = heads.load_variant(tmp_path)
    blocks = [np.random.default_rng(0).normal(size=(10, c)).astype(np.float32) for c in (4, 6, 6)]
    probs = heads.predict_proba(loaded, blocks, batch_size=3)
    x = [torch.from_numpy(b) for b in blocks]
    expected = (torch.sigmoid(models[0](x)) + torch.sigmoid(models[1](x))) / 2
    assert probs.shape == (10, 3) and cfg["n_folds"] == 2
    assert np.allclose(probs, expected.detach().numpy(), atol=1e-6)


def test_load_variant_names_missing_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {}, "n_folds": 1}))
    with pytest.raises(heads.HeadError, match="fold_0.pt"):
        heads.load_variant(tmp_path)
