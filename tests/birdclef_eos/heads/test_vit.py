import numpy as np
import pytest
import torch

from birdclef_eos.heads import vit
from birdclef_eos.heads.vit import (PosEmbedShapeError, SpectrogramViT, ViTError, build_vit, count_parameters,
                                    fit_state, load_init, pos_embed_shape, resize_pos_embed)

SMALL = dict(n_classes=5, patch=14, width=16, depth=1, heads=2, ffn=32, dropout=0.0)


def small(image):
    torch.manual_seed(0)
    return build_vit(dict(SMALL, image=image))


@pytest.mark.parametrize("image, tokens", [(196, 197), (224, 257)])
def test_position_embedding_and_parameter_shapes(image, tokens):
    # the paper's ViT-B/14 shapes: [1, 197, 768] at 196 px, [1, 257, 768] at 224 px
    assert pos_embed_shape(image, 14, 768) == (1, tokens, 768)
    model = small(image)
    assert tuple(model.pos_embed.shape) == (1, tokens, 16)
    assert tuple(model.patch_embed.proj.weight.shape) == (16, 1, 14, 14)
    # the sizes differ only by the position embedding: (257 - 197) x width parameters
    assert count_parameters(small(224)) - count_parameters(small(196)) == 60 * 16
    logits = model([torch.randn(3, 12, 40).half()])   # any mel shape: resized to image x image
    assert logits.shape == (3, 5) and logits.dtype == torch.float32


def test_default_model_sizes():
    for image, expected in ((196, 197), (224, 257)):
        m = SpectrogramViT(48, image, 14, 64, 2, 4, 128)
        assert tuple(m.pos_embed.shape) == (1, expected, 64)


def test_bad_image_size_and_input():
    with pytest.raises(ViTError, match="not a positive multiple of the patch size 14"):
        build_vit(dict(SMALL, image=200))
    with pytest.raises(ViTError, match="one tensor"):
        small(196)([torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)])
    with pytest.raises(ViTError, match=r"\[B, n_mels, frames\]"):
        small(196)([torch.zeros(4, 4)])


def test_a_196_checkpoint_into_a_224_model_names_both_shapes_and_the_file(tmp_path):
    path = tmp_path / "vit196.pt"
    torch.save(small(196).state_dict(), path)
    with pytest.raises(PosEmbedShapeError) as err:
        load_init(small(224), path)
    message = str(err.value)
    assert "[1, 197, 16]" in message and "[1, 257, 16]" in message and str(path) in message
    assert "196-px" in message and "224-px" in message and "resize_pos_embed" in message


def test_resizing_gives_the_target_shape(tmp_path):
    pos = torch.randn(1, 197, 16)
    out = resize_pos_embed(pos, 16)
    assert tuple(out.shape) == (1, 257, 16)
    torch.testing.assert_close(out[:, :1], pos[:, :1])          # the CLS position is kept
    torch.testing.assert_close(resize_pos_embed(pos, 14), pos)  # same grid: unchanged
    # a constant grid stays constant under bicubic interpolation
    flat = torch.cat([torch.zeros(1, 1, 4), torch.ones(1, 196, 4)], dim=1)
    torch.testing.assert_close(resize_pos_embed(flat, 16)[:, 1:], torch.ones(1, 256, 4))
    path = tmp_path / "vit196.pt"
    source = small(196)
    torch.save(source.state_dict(), path)
    target = small(224)
    report = load_init(target, path, resize=True)
    assert report["resized_pos_embed"] == [[1, 197, 16], [1, 257, 16]]
    assert tuple(target.pos_embed.shape) == (1, 257, 16)
    torch.testing.assert_close(target.blocks[0].mlp.fc1.weight, source.blocks[0].mlp.fc1.weight)
    with pytest.raises(PosEmbedShapeError, match="not a square grid"):
        resize_pos_embed(torch.randn(1, 11, 4), 16)


def test_rgb_patch_kernel_is_summed_and_foreign_heads_are_skipped(tmp_path):
    state = small(224).state_dict()
    state["patch_embed.proj.weight"] = torch.ones(16, 3, 14, 14)
    state["head.weight"], state["head.bias"] = torch.zeros(1000, 16), torch.zeros(1000)
    state["mask_token"] = torch.zeros(1, 16)                     # a DINOv2 extra
    fitted, report = fit_state(small(224), state, "dinov2.pt")
    assert report["summed_rgb"] and sorted(report["skipped"]) == ["head.bias", "head.weight"]
    assert report["unexpected"] == ["mask_token"]
    assert sorted(report["missing"]) == ["head.bias", "head.weight"]
    torch.testing.assert_close(fitted["patch_embed.proj.weight"], torch.full((16, 1, 14, 14), 3.0))


def test_another_width_is_named(tmp_path):
    state = build_vit(dict(SMALL, image=224, width=32, heads=2, ffn=32)).state_dict()
    with pytest.raises(PosEmbedShapeError, match=r"\[1, 257, 32\]"):
        fit_state(small(224), state, "wide.pt", resize=True)
    state.pop("pos_embed")
    with pytest.raises(ViTError, match="wide.pt: tensor .* has shape"):
        fit_state(small(224), state, "wide.pt")


def test_unreadable_checkpoint(tmp_path):
    with pytest.raises(ViTError, match="not found"):
        vit.read_state(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(ViTError, match="junk.pt: not a readable"):
        vit.read_state(tmp_path / "junk.pt")
    torch.save({"model": small(196).state_dict()}, tmp_path / "wrapped.pt")
    assert "pos_embed" in vit.read_state(tmp_path / "wrapped.pt")


def test_load_folds_refuses_another_size(tmp_path):
    import json
    model = small(196)
    torch.save(model.state_dict(), tmp_path / "fold_0.pt")
    (tmp_path / "config.json").write_text(json.dumps({"model": dict(SMALL, image=196), "folds": [0]}))
    models, config = vit.load_folds(tmp_path)
    x = [torch.from_numpy(np.random.default_rng(0).normal(size=(2, 8, 30)).astype(np.float32))]
    torch.testing.assert_close(models[0](x), model.eval()(x))
    with pytest.raises(PosEmbedShapeError, match=r"fold_0.pt: .*\[1, 197, 16\].*\[1, 257, 16\]"):
        vit.load_folds(tmp_path, image=224)
