"""The params.yaml schema: every knob rejects a wrong type and an out-of-range or unknown value,
naming the knob; the shipped file passes; rules across knobs; YAML 1.2 reading."""
from __future__ import annotations

import copy
import fnmatch
from pathlib import Path

import pytest

from stages import schema
from stages.schema import ParamsError

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "params.yaml"
SHIPPED = schema.load_params(PARAMS_FILE)


def knob_paths(node, path=""):
    """(dotted path, value) of every knob in params.yaml, wildcard names and overrides expanded."""
    for key, value in node.items():
        full = f"{path}.{key}" if path else str(key)
        if schema.knob_at(full) is not None:
            yield full, value
        if isinstance(value, dict):
            yield from knob_paths(value, full)


def wrong_type(knob: schema.Knob):
    if knob.type in ("str", "sha256", "frontend"):
        return [12345]
    if knob.type == "bool":
        return ["yes"]  # YAML 1.1's boolean, a string in YAML 1.2
    if knob.type in ("int", "number"):
        return ["3e-4", True] + ([2.5] if knob.type == "int" else [])
    if knob.type == "share":
        return [True, {"a": 1}]
    if knob.type == "overrides":
        return ["sometimes"]
    return ["1", {"a": 1}]


def bad_values(knob: schema.Knob):
    """Values of the right type that the knob must still reject."""
    out = []
    if knob.type in ("int", "number"):
        step = 1 if knob.type == "int" else 0.5
        if knob.lo is not None:
            out.append(knob.lo if knob.lo_open else knob.lo - step)
        if knob.hi is not None:
            out.append(knob.hi if knob.hi_open else knob.hi + step)
        if knob.type == "number":
            out.append(float("nan"))
    if knob.type == "str":
        out.append("")
        if knob.choices:
            out.append("bogus")
    if knob.type == "sha256":
        out += ["abc", "F" * 64]
    if knob.type == "range":
        out += [[5, 1], [1, 2, 3]] + ([[knob.lo - 1, knob.lo]] if knob.lo is not None else [])
    if knob.type == "numbers":
        out += [[], [0.0, 0.0]] + (["bogus"] if knob.words else [])
    if knob.type == "shift_sets":
        out += [[], [[]], [[0.0, 0.0]], [[0.0], [0.0]], [[-1.0, 1.0], [1.0, -1.0]]]
    if knob.type == "blocks":
        out += [[], [-1], [1, 1], "bogus"]
    if knob.type == "names":
        out += ([] if knob.lo == 0 else [[]]) + [["v1", "v1"]]
    if knob.type == "share":
        out += ["bogus", 1.5, -0.1]
    if knob.type == "overrides":
        out.append({"sigmaa": 1.0})
    if knob.type == "frontend":
        out += ["", "fft", "tensor:"]
    return out


def set_path(params: dict, path: str, value) -> dict:
    params = copy.deepcopy(params)
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    return params


KNOBS = list(knob_paths(SHIPPED))
CASES = [(path, bad, "type") for path, _ in KNOBS for bad in wrong_type(schema.knob_at(path))] + \
        [(path, bad, "value") for path, _ in KNOBS for bad in bad_values(schema.knob_at(path))]


def test_every_schema_entry_is_exercised_by_the_shipped_file():
    patterns = [p.replace("*", "[!.]*") for p in schema.SCHEMA]
    unused = [p for p in patterns if not any(fnmatch.fnmatchcase(path, p) for path, _ in KNOBS)]
    assert unused == []
    assert len(CASES) > 3 * len(KNOBS)


@pytest.mark.parametrize("path,bad,why", CASES, ids=[f"{p}={b!r}" for p, b, _ in CASES])
def test_bad_knob_is_named(path, bad, why):
    with pytest.raises(ParamsError) as err:
        schema.validate(set_path(SHIPPED, path, bad))
    named = [p for p in err.value.problems if p.path == path or p.path.startswith(path + ".")]
    assert named, f"{path}={bad!r}: {err.value}"
    assert path in str(err.value)


def test_shipped_params_pass():
    schema.validate(SHIPPED)
    n, problems = schema.check(SHIPPED)
    assert problems == [] and n == len(KNOBS)


def test_smoke_overlay_merged_over_params_passes():
    import copy

    from tests.fakes.repo_copy import deep_update  # the merge the smoke test's repo copy uses
    schema.validate(deep_update(copy.deepcopy(SHIPPED), schema.load_params(REPO / "tests" / "stages" / "smoke_params.yaml")))


def test_no_key_anywhere_is_named_size_or_nfiles():
    """DVC 3.67's run-cache drops such keys from the params hash (treeverse/dvc #10296)."""
    assert schema.forbidden_keys(SHIPPED) == []
    assert schema.forbidden_keys({"a": {"size": 1, "b": [{"nfiles": 2}]}}) == ["a.size", "a.b[0].nfiles"]
    with pytest.raises(ParamsError, match=r"dataset.scales.size: a key named 'size'"):
        schema.validate(set_path(SHIPPED, "dataset.scales.size", SHIPPED["dataset"]["scales"]["smoke"]))


def test_yaml_12_reads_3e_4_as_a_float(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_FILE.read_text().replace("lr: 0.001 ", "lr: 3e-4  "))
    params = schema.load_params(path)
    assert params["train"]["optim"]["lr"] == 3e-4 and isinstance(params["train"]["optim"]["lr"], float)
    schema.validate(params)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("probe:\n  k: 5\n  blocks: [1, 2\n  folds: 5\n")
    with pytest.raises(ParamsError, match=r"params.yaml, line 4, column \d+: YAML syntax error"):
        schema.load_params(path)
    path.write_text("probe:\n  k: 5\n  k: 6\n")
    with pytest.raises(ParamsError, match=r"params.yaml, line 3, .*duplicate key"):
        schema.load_params(path)


def test_the_reported_problems_are_all_named_at_once():
    bad = copy.deepcopy(SHIPPED)
    bad["train"]["optim"]["lr"] = "3e-4"  # what a YAML 1.1 loader makes of 3e-4
    bad["postprocess"]["sigma"] = -1
    bad["postprocess"]["smooth_mode"] = "bogus"
    bad["probe"]["k"] = 0
    bad["train"]["optim"]["epochs"] = 0
    bad["leaderboard"]["digits"] = -1
    bad["probe"]["select"] = 0
    bad["train"]["blocks"] = [99]
    with pytest.raises(ParamsError) as err:
        schema.validate(bad, n_blocks=26)
    paths = [p.path for p in err.value.problems]
    assert sorted(paths) == sorted(["probe.k", "probe.select", "train.blocks", "train.optim.epochs",
                                    "train.optim.lr", "postprocess.sigma", "postprocess.smooth_mode",
                                    "leaderboard.digits"])
    text = str(err.value)
    assert "8 problem(s)" in text
    assert "train.optim.lr = '3e-4': expected a number > 0 (it is a string" in text
    assert "postprocess.sigma = -1: expected a number >= 0" in text
    assert "postprocess.smooth_mode = 'bogus': expected one of: nearest | reflect" in text
    assert "train.blocks = [99]: blocks [99] do not exist: the backbone has 26 (0..25)" in text


def test_unknown_keys_name_the_nearest_known_one_or_the_new_name():
    bad = copy.deepcopy(SHIPPED)
    bad["probe"]["foldz"] = 5
    bad["postprocces"] = {}
    bad["head"] = {"blocks": [1]}
    bad["backbone"]["cache_dir"] = "~/x"
    with pytest.raises(ParamsError) as err:
        schema.validate(bad)
    text = str(err.value)
    assert "probe.foldz: unknown key; did you mean probe.folds?" in text
    assert "postprocces: unknown key; did you mean postprocess?" in text
    assert "head: unknown key: renamed to train.blocks" in text
    assert "backbone.cache_dir: unknown key: renamed to runtime.cache_dir" in text


def test_missing_knob_is_named():
    bad = copy.deepcopy(SHIPPED)
    del bad["probe"]["k"]
    with pytest.raises(ParamsError, match=r"probe.k: missing; expected an integer >= 1"):
        schema.validate(bad)
    del bad["train"]["optim"]["samples_per_epoch"]  # optional
    del bad["submissions"]["v1"]["tta"]
    with pytest.raises(ParamsError) as err:
        schema.validate(bad)
    assert [p.path for p in err.value.problems] == ["probe.k"]


def test_sections_validate_only_those_and_take_dotted_paths():
    bad = set_path(SHIPPED, "probe.k", 0)
    schema.validate(bad, sections=["dataset", "backbone.name", "train.variants.attn", "submissions"])
    with pytest.raises(ParamsError, match="probe.k = 0"):
        schema.validate(bad, sections=["probe"])
    with pytest.raises(ParamsError, match="backbone.name = 'perch'"):
        schema.validate(set_path(SHIPPED, "backbone.name", "perch"), sections=["backbone.name"])
    with pytest.raises(ParamsError, match="runtime: missing"):
        schema.validate({k: v for k, v in SHIPPED.items() if k != "runtime"}, sections=["runtime"])


# ---- rules across knobs ----

@pytest.mark.parametrize("path,value,n_blocks,message", [
    ("dataset.scale", "huge", None, "dataset.scale = 'huge': expected a key of dataset.scales: smoke | default"),
    ("dataset.scales.smoke.species", 2, None, "dataset.scales.smoke.species = 2: expected >= genera (3)"),
    ("dataset.scales.smoke.head_species", 6, None, "head_species = 6: expected <= species (5)"),
    ("dataset.class_shares.Aves", 0.5, None, "shares must sum to 1, not 0.9"),
    ("dataset.min_overlap_s", 5, None, "dataset.min_overlap_s = 5: expected < dataset.chunk_s (5)"),
    ("dataset.chunk_s", 90, None, "dataset.chunk_s = 90: expected <= dataset.soundscape_s (60)"),
    ("train.model.heads", 3, None, "train.model.d = 256: expected a multiple of train.model.heads (3)"),
    ("probe.select", 27, 26, "probe.select = 27: expected 1 <= select <= 26 (blocks in the backbone)"),
    ("probe.blocks", [1, 4], None, "probe.select = 3: expected 1 <= select <= 2 (blocks in probe.blocks)"),
    ("probe.blocks", [1, 26], 26, "probe.blocks = [1, 26]: blocks [26] do not exist"),
    ("surgery.blocks", [30], 26, "surgery.blocks = [30]: blocks [30] do not exist"),
    ("submissions.v2.model", "attention", None,
     "submissions.v2.model = 'attention': expected a key of train.variants: scalarmix | attn | residual"),
    ("submissions.v5.tta", [-2.0, 0.0], None, "submissions.v5.tta = [-2.0, 0.0]: shifts [-2.0] are not extracted"),
    ("base.protossm.tta_candidates", [[0.0], [-2.0, 0.0]], None,
     "base.protossm.tta_candidates = [-2.0, 0.0]: shifts [-2.0] have no labelled windows"),
    ("extract.labelled_shifts", None, None,
     "base.protossm.tta_candidates = [-1.0, 0.0, 1.0]: shifts [-1.0, 1.0] have no labelled windows"),
    ("extract.tta_shifts", [0.0, 1.0], None,
     "base.protossm.tta_candidates = [-1.0, 0.0, 1.0]: shifts [-1.0] are not extracted"),
    ("base.reference_tta", [0.0, 2.0], None, "base.reference_tta = [0.0, 2.0]: shifts [2.0] have no labelled windows"),
    ("base.protossm.tta", [0.0, 2.0], None, "base.protossm.tta = [0.0, 2.0]: shifts [2.0] are not extracted"),
    ("leaderboard.table2", ["v1", "v9"], None, "leaderboard.table2 = ['v1', 'v9']: ['v9'] are not submissions"),
    ("base.source", "file", None, "blend.space = 'oof': the space is chosen on the base's OOF, and base.source is 'file'"),
])
def test_cross_field_rules(path, value, n_blocks, message):
    with pytest.raises(ParamsError) as err:
        schema.validate(set_path(SHIPPED, path, value), n_blocks=n_blocks)
    assert message in str(err.value)


def test_blocks_must_be_exposed_by_surgery():
    bad = set_path(set_path(SHIPPED, "surgery.blocks", [10, 13, 15]), "train.blocks", [10, 12])
    with pytest.raises(ParamsError, match=r"train.blocks = \[10, 12\]: blocks \[12\] are not exposed"):
        schema.validate(bad)
    schema.validate(set_path(bad, "train.blocks", [10, 13]), n_blocks=26)


def test_block_count_is_checked_only_when_known():
    params = set_path(SHIPPED, "train.blocks", [99])
    schema.validate(params)
    with pytest.raises(ParamsError, match=r"train.blocks = \[99\]"):
        schema.validate(params, n_blocks=26)


def test_submission_postprocess_overrides_are_checked_as_postprocess_knobs():
    bad = set_path(SHIPPED, "submissions.v7.postprocess", {"sigma": -1, "smooth_mod": "wrap"})
    with pytest.raises(ParamsError) as err:
        schema.validate(bad)
    text = str(err.value)
    assert "submissions.v7.postprocess.sigma = -1: expected a number >= 0" in text
    assert "submissions.v7.postprocess.smooth_mod: unknown key; did you mean " \
           "submissions.v7.postprocess.smooth_mode?" in text


def test_command_line(tmp_path, capsys):
    assert schema.main([str(PARAMS_FILE), "--blocks-json", str(tmp_path / "none.json")]) == 0
    assert capsys.readouterr().out == f"{PARAMS_FILE}: {len(KNOBS)} knobs valid\n"
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_FILE.read_text().replace("  k: 5 ", "  k: 0 "))
    (tmp_path / "blocks.json").write_text('{"n_found": 2, "blocks": []}')
    assert schema.main([str(path), "--blocks-json", str(tmp_path / "blocks.json")]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "probe.k = 0" in err
    assert "probe.select = 3: expected 1 <= select <= 2 (blocks in the backbone)" in err
