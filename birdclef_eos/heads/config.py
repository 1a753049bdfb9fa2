"""The typed config of the sequence heads: params.yaml `train` (``TrainParams``: the folds every head
shares, ``HeadFolds``; the model, ``HeadModel``; the optimiser, ``TrainOptim``; the variants,
``TrainVariant``), `sidecar.head` (``SidecarHead``), `vit` (``VitParams``: the spectrogram ViT of
heads/vit.py), `pseudo` (``PseudoParams``: the teacher, ``PseudoTeacher``, and how a student reads
its labels, ``PseudoLabels``: heads/pseudo.py) and each `students` entry (``Student``), each knob's
type, bounds and choices stated
once (birdclef_eos/knobs.py says why pydantic, and why no defaults here). The head types allowed come
from birdclef_eos/heads/registry.py. The rule that spans two knobs, ``d`` a multiple of ``heads``
(multi-head attention splits the width), is ``HeadModel``'s validator (``VitModel``'s likewise, and
``VitParams`` checks that each size's image is a whole number of patches).

A stage that reads only some of `train` (the student and the sidecar take the folds but not the
variants) validates ``HeadFolds`` on those knobs: ``TrainParams`` extends it, so each type is written
once.

A stage makes birdclef_eos/heads/training.py's ``TrainConfig`` with ``TrainConfig.from_mapping(optim.model_dump())``
(a knob the section lacks keeps that dataclass's value, as before). This module imports no torch
(stages/schema.py, which every stage loads, reads it); heads/models.py and heads/vit.py ship inside the
Kaggle model folder and never import it. The pseudo-label modes are heads/pseudo.py's (which
imports only numpy).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from birdclef_eos.heads.pseudo import MODES as PSEUDO_MODES
from birdclef_eos.heads.registry import HEAD_TYPES, attention_types
from birdclef_eos.knobs import Config, KnobError, Number, Text, blocks, numbers

PositiveInt = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0, le=1)]
HeadName = Literal[tuple(HEAD_TYPES)]
AttentionHead = Literal[tuple(attention_types())]
TrainBlocks = blocks("auto")  # auto: the probe's top blocks
VARIANT_BLOCK_WORDS = ("auto", "last3", "embedding", "best1", "all")  # the ablation's choices (stages/train.py)
VariantBlocks = blocks(*VARIANT_BLOCK_WORDS)


class HeadModel(Config):
    """A head's architecture: token width, attention heads, FFN width, dropout."""
    d: PositiveInt
    heads: PositiveInt
    ffn: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]

    @model_validator(mode="after")
    def _width_splits_into_heads(self) -> HeadModel:
        if self.d % self.heads:
            raise KnobError("d", self.d, f"expected a multiple of {{prefix}}heads ({self.heads})")
        return self


class HeadOptim(Config):
    """A head's training: early-stopped AdamW with cosine decay, mixup, a seeded sampler."""
    epochs: PositiveInt
    patience: PositiveInt
    min_delta: Annotated[float, Field(ge=0)]
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: Annotated[float, Field(ge=0)]
    mixup_alpha: Annotated[float, Field(ge=0)]
    samples_per_epoch: Annotated[int, Field(ge=1)] | None = None  # absent or null: the fold's training rows


class TrainOptim(HeadOptim):
    """The heads' optimiser (`train.optim`): the scalar mix's own learning-rate multiplier besides."""
    mix_lr_scale: Annotated[float, Field(gt=0)]


class HeadFolds(Config):
    """What every head's cross-validation shares: seeds, threads, the file-grouped folds, the target of
    a focal recording's secondary labels."""
    seed: Annotated[int, Field(ge=0)]
    threads: PositiveInt
    n_folds: Annotated[int, Field(ge=2)]
    fold_salt: Text
    secondary_weight: Share


class TrainVariant(Config):
    """One `train.variants` entry: a head type, its soundscape share, its table, its own blocks."""
    head: HeadName
    soundscape_fraction: Share
    table: Text = None  # paper/tables/<table>.md; absent: the stage writes no table
    # the ablation's block choice; absent: train.blocks (None marks absence; an explicit null is refused,
    # as pydantic does not validate a default)
    blocks: VariantBlocks = None


class TrainParams(HeadFolds):
    blocks: TrainBlocks
    model: HeadModel
    optim: TrainOptim
    variants: dict[str, TrainVariant]


class SidecarHead(Config):
    """`sidecar.head`: an attention head on BirdNET's final embedding and its TTA shifts."""
    type: AttentionHead
    soundscape_fraction: Share
    model: HeadModel
    optim: HeadOptim
    tta: numbers()


class PseudoTeacher(Config):
    """`pseudo.teacher`: the train variant whose fold models label the unlabelled soundscapes (the
    `pseudo` stage reads only this)."""
    teacher: Text


class PseudoLabels(Config):
    """How a student reads the teacher's soft labels (`pseudo.mode`, `gate`, `floor`, `power`; the
    student stage reads only these). The stage writes them into the student's metrics as given."""
    mode: Literal[PSEUDO_MODES]                   # the teacher's fold mean | teacher fold k for student fold k
    gate: Annotated[Number, Field(ge=0, le=1)]    # drop chunks whose top probability is below it
    floor: Annotated[Number, Field(ge=0, le=1)]   # probabilities below it become 0
    power: Annotated[Number, Field(gt=0)]         # labels ** power


class PseudoParams(PseudoTeacher, PseudoLabels):
    """params.yaml `pseudo`: the teacher and how its labels are read."""


class StudentSources(Config):
    """A student's batch composition: the share of each source (they sum to 1: ``Student``'s rule)."""
    focal: Annotated[Number, Field(ge=0, le=1)]
    soundscape: Annotated[Number, Field(ge=0, le=1)]
    pseudo: Annotated[Number, Field(ge=0, le=1)]


class Student(Config):
    """One `students` entry: its unpseudo twin (a train variant), its sources and, optionally, its own
    `mode` (absent: `pseudo.mode`; None marks absence, an explicit null is refused)."""
    twin: Text
    sources: StudentSources
    mode: Literal[PSEUDO_MODES] = None

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> Student:
        shares = self.sources.model_dump()
        if abs(sum(shares.values()) - 1) > 1e-6:
            raise KnobError("sources", shares, "expected shares summing to 1")
        return self


class VitSize(Config):
    """One `vit.sizes` entry: the square input in px, an optional init checkpoint and whether its
    position embedding may be interpolated to this size."""
    image: PositiveInt
    init: Text | None                          # null: from scratch
    resize_pos_embed: bool


class VitModel(Config):
    """The spectrogram ViT (heads/vit.py): patch, width, depth, heads, MLP width, dropout, pooling."""
    patch: PositiveInt
    width: PositiveInt
    depth: PositiveInt
    heads: PositiveInt
    ffn: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]
    pool: Literal["cls", "mean"]

    @model_validator(mode="after")
    def _width_splits_into_heads(self) -> VitModel:
        if self.width % self.heads:
            raise KnobError("heads", self.heads, f"expected a divisor of {{prefix}}width ({self.width})")
        return self


class VitOptim(HeadOptim):
    """As a head's, but `samples_per_epoch` must be written (a number, or null: the fold's rows)."""
    samples_per_epoch: Annotated[int, Field(ge=1)] | None


class VitParams(Config):
    """params.yaml `vit`: one stage per size, the ViT and its training in the first `folds` of the heads'
    folds. A size's image is a whole number of patches (the model's validator)."""
    sizes: dict[str, VitSize]
    model: VitModel
    folds: PositiveInt
    soundscape_fraction: Share
    optim: VitOptim
    tta: numbers()
    seed: Annotated[int, Field(ge=0)]
    threads: PositiveInt

    @model_validator(mode="after")
    def _images_are_whole_patches(self) -> VitParams:
        for name, size in self.sizes.items():
            if size.image % self.model.patch:
                raise KnobError(f"sizes.{name}.image", size.image,
                                f"expected a multiple of {{prefix}}model.patch ({self.model.patch})")
        return self
