"""The vocabulary of the library's typed config models: a strict pydantic base and the knob shapes
that plain ``int`` / ``float`` / ``Literal`` cannot say (a list of distinct numbers, of names).

Each params.yaml section that configures a library component has one pydantic model beside the code
it configures (``data/config.py``, ``heads/config.py``, ``scoring/postprocess_config.py``, ...). A model
states a knob's type, bounds and choices once, as ``Annotated[int, Field(ge=1)]``, ``Literal[...]``
built from a registry, or the shapes below; stages/schema.py derives its per-knob table from the
models, so nothing is written twice. Models carry no defaults: params.yaml holds them alone (a knob
that may be absent has the default None, which means "absent", never a value of its own: ``X = None``
when null is refused, ``X | None = None`` when null is allowed).

Why pydantic and why strict: it is already installed (a DVC dependency, requirements.lock), and a
strict model refuses what YAML 1.1 habits produce (``"3e-4"`` as a string, ``yes`` as a bool) instead
of coercing it. Strict pydantic still turns an int into a float for a ``float`` field; a knob a stage
writes out or formats is ``Number`` (or ``numbers(as_written=True)``, ``span``), which keeps ``5`` as
``5``, so typing a section moves no output's bytes. The models stay out of every module the Kaggle model folder ships
(birdclef_eos/bundle/infer.py's import closure): Kaggle's image has another pydantic, and the
shipped bytes are fixed.

A cross-field rule is a ``model_validator`` that raises ``KnobError``: it names the field it blames,
so the schema reports the full dotted knob, as for a bad single value.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WrapValidator


class Config(BaseModel):
    """A params section: unknown keys refused, no coercion, no inf/nan, immutable."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @classmethod
    def pick(cls, section: dict):
        """This model's knobs out of a larger mapping (a stage that reads part of a section, such as
        the student's share of params.yaml `train`, is handed only that part)."""
        return cls.model_validate({k: section[k] for k in cls.model_fields})


class KnobError(ValueError):
    """A cross-field rule's failure: ``field`` (relative to the model) is the knob blamed.
    ``allowed`` may say ``{prefix}`` where the section's dotted path belongs (the schema fills it in)."""

    def __init__(self, field: str, value, allowed: str):
        super().__init__(f"{field} = {value!r}: {allowed.replace('{prefix}', '')}")
        self.field, self.value, self.allowed = field, value, allowed


@dataclass(frozen=True)
class Shape:
    """Marks a knob the plain types cannot say, for the schema: ``kind`` numbers (non-empty, distinct,
    each within the bounds; ``item`` int: integers only; or one of ``words``), shift_sets (a list of
    distinct numbers lists), names (distinct non-empty strings, at least ``min_items``), blocks (one
    of ``words`` or a non-empty list of distinct 0-based block indices), range (``[lo, hi]``, each
    within the bounds), frontend (a backbone's DFT placement) or sha256 (64 lowercase hex digits)."""
    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    min_items: int = 1
    words: tuple[str, ...] = ()
    item: str = "number"


def _as_written(value, handler):
    """Validate as a float (bounds, no inf/nan, no bool, no string) but hand back an int unchanged."""
    checked = handler(value)
    return value if type(value) is int else checked


# A number that stays as written: an int is not turned into a float. A stage that writes a knob into
# a file or a text (JSON, a README line) writes ``5``, not ``5.0``, as it did from the raw mapping.
Number = Annotated[float, WrapValidator(_as_written)]


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("expected distinct values")
    return values


def _bound(lo, hi, lo_open, hi_open):
    return Field(gt=lo if lo_open else None, ge=None if lo_open else lo,
                 lt=hi if hi_open else None, le=None if hi_open else hi)


def numbers(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
            integers: bool = False, words: tuple[str, ...] = (), as_written: bool = False):
    """A non-empty list of distinct finite numbers (``integers``: ints), each within the bounds, or
    one of ``words`` (``oof``: chosen on the out-of-fold predictions). ``as_written``: items are
    ``Number`` (an int item stays an int) for a stage that writes the list out as given."""
    bound = _bound(lo, hi, lo_open, hi_open)
    item = Annotated[int if integers else Number if as_written else float, bound]
    listed = Annotated[list[item], Field(min_length=1), AfterValidator(_distinct)]
    shape = Shape("numbers", lo, hi, lo_open, hi_open, words=tuple(words), item="int" if integers else "number")
    if words:
        return Annotated[Union[Literal[tuple(words)], listed], shape]
    return Annotated[listed, shape]


def _ordered(values: list) -> list:
    if values[0] > values[1]:
        raise ValueError("expected lo <= hi")
    return values


def span(lo: float | None = None, lo_open: bool = False, integers: bool = False):
    """``[lo, hi]``: two numbers (``integers``: ints; else ``Number``, as written) with lo <= hi, each
    within the bound."""
    item = Annotated[int if integers else Number, _bound(lo, None, lo_open, False)]
    return Annotated[list[item], Field(min_length=2, max_length=2), AfterValidator(_ordered),
                     Shape("range", lo, lo_open=lo_open, item="int" if integers else "number")]


def _distinct_sets(values: list) -> list:
    if len({tuple(sorted(v)) for v in values}) != len(values):
        raise ValueError("expected distinct sets")
    return values


def shift_sets():
    """A non-empty list of distinct sets of window shifts (each a non-empty list of distinct numbers)."""
    one = Annotated[list[float], Field(min_length=1), AfterValidator(_distinct)]
    return Annotated[list[one], Field(min_length=1), AfterValidator(_distinct_sets), Shape("shift_sets")]


def names(min_items: int = 1):
    """A list of at least ``min_items`` distinct non-empty strings."""
    return Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=min_items),
                     AfterValidator(_distinct), Shape("names", min_items=min_items)]


def blocks(*words: str):
    """One of ``words`` (auto, all, ...) or a non-empty list of distinct 0-based block indices."""
    indices = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)]
    return Annotated[Union[Literal[words], indices], Shape("blocks", words=words)]


Text = Annotated[str, Field(min_length=1)]  # a non-empty string
SHA256 = r"^[0-9a-f]{64}$"  # a file's pinned sha256, as sha256_file writes it (stages/schema.py checks it too)
Sha256 = Annotated[str, Field(pattern=SHA256), Shape("sha256")]


def fill(cls, model: BaseModel, given: dict) -> dict:
    """Every field of the dataclass ``cls``, by name: from ``given``, else ``model``'s field of the same
    name. A field neither has is an error, so no dataclass default is ever used silently."""
    out = {}
    for f in fields(cls):
        if f.name in given:
            out[f.name] = given[f.name]
        elif f.name in type(model).model_fields:
            out[f.name] = getattr(model, f.name)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no {type(model).__name__} field of that name and no value given")
    return out


Seed = Annotated[int, Field(ge=0)]                        # a random seed
Draws = Annotated[int, Field(ge=1)]                       # bootstrap draws
Confidence = Annotated[Number, Field(gt=0, lt=1)]         # an interval's level (0.95), as written
