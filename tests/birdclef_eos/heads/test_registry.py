"""The head-type registry and heads/models.py agree (models.py keeps its own tuple of names: it ships
in the Kaggle model folder)."""
import pytest

from birdclef_eos.heads import models
from birdclef_eos.heads.registry import HEAD_TYPES, HeadTypeError, attention_types, head_type

CONFIG = {"channels": [3, 4, 4], "n_classes": 3, "d": 8, "heads": 2, "ffn": 8, "dropout": 0.1}


def test_models_build_exactly_the_registered_types():
    assert models.HEAD_TYPES == tuple(HEAD_TYPES)


@pytest.mark.parametrize("name", list(HEAD_TYPES))
def test_each_type_builds_its_registered_class(name):
    model = models.build_head({"type": name, **CONFIG})
    assert type(model).__name__ == HEAD_TYPES[name].model
    assert HEAD_TYPES[name].attention == hasattr(model, "cls_attention")


def test_attention_types_and_unknown_type():
    assert attention_types() == ("attn", "residual")
    assert head_type("residual").table_note.startswith("\nThe last token of the residual head")
    with pytest.raises(HeadTypeError, match=r"train.variants.x.head: unknown head type 'mlp'"):
        head_type("mlp", "train.variants.x.head")
