"""dvc.yaml, params.yaml and the code agree, and the house keeps its shape.

- dvc.yaml is what `python -m stages.layout --write` makes of it (stages/layout.py derives the lists):
  each stage's code deps are exactly the project modules it imports, transitively (plus files it runs
  by path), then its notebook, so editing any of them re-runs it (the params check excepted: it hands no
  stage a value, tested below, and only the always-run `fingerprint` stage lists it); the submissions/<name> entries
  params.yaml decides (blend, submit and base outs, the blend's parts) and the `plots:` curve charts of every
  model params.yaml trains are current.
- Each stage's `params:` are exactly the knobs its module declares in PARAMS.
- The library (birdclef_eos) never imports stages; no stage module imports another (nor the layout
  tool); no cycles.
"""
import importlib
import shutil
from pathlib import Path

import pytest
import yaml

from stages import layout
from stages.layout import COMMAND, code_deps, project_imports, stage_of
from stages.paths import NOTEBOOKS, ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def stage_entries():
    for name, stage in DVC["stages"].items():
        yield name, stage.get("do", stage)


# cheap stages that skip the notebook because an experiment re-runs them and a kernel would cost
# more than their work: bundle (re-runs on every `blend.*` and post-processing change) and submit
# (every `postprocess.*` change); and blend, leaderboard and paper (the published copy and paper.md),
# which both experiments re-run and whose kernel start-up was a third to a half of their time
# (measured: blend 4.8 s direct against 9.3 s through papermill); what their notebooks showed is in the
# files they write (blend.json and Figure 3; leaderboard.json, Tables 2-4, the boards' and shake-up
# figures; paper.md and verdicts.json), which the paper stage copies where people read
NOTEBOOK_FREE = {"bundle", "submit", "blend", "leaderboard", "paper"}


def test_every_stage_runs_its_notebook():
    for name, body in stage_entries():
        stage = stage_of(body["cmd"])
        if getattr(importlib.import_module(f"stages.{stage}"), "NOTEBOOK", True) is False:
            assert body.get("always_changed") or stage in NOTEBOOK_FREE, \
                f"{name}: only a cheap always-run stage (or one of {sorted(NOTEBOOK_FREE)}) may skip the notebook"
            assert not (NOTEBOOKS / f"{stage}.ipynb").exists(), f"{name}: runs no notebook; notebooks/{stage}.ipynb is stale"
            assert not any(str(o).startswith("reports/") for o in body.get("outs", [])), f"{name}: writes no report"
            continue
        assert (NOTEBOOKS / f"{stage}.ipynb").exists(), f"{name}: notebooks/{stage}.ipynb missing"
        assert f"notebooks/{stage}.ipynb" in body["deps"], f"{name}: notebook not a dep"


def test_dvc_yaml_is_current():
    before, after, stale = layout.render(ROOT)
    assert before == after, (f"dvc.yaml is stale in stage(s) {layout.describe(stale) or '(formatting only)'}: "
                             f"run `{COMMAND}`")


@pytest.mark.parametrize("name", list(DVC["stages"]))
def test_code_deps_are_exactly_the_imports(name):
    """Per stage, the files named (the derivation is stages/layout.py's); no stage runs the layout tool."""
    body = DVC["stages"][name].get("do", DVC["stages"][name])
    stage = stage_of(body["cmd"])
    listed = {d for d in body["deps"] if d.endswith(".py")}
    needed = set(code_deps(stage))
    missing, stale = sorted(needed - listed), sorted(listed - needed)
    assert not missing, f"dvc.yaml stage '{name}' does not list {missing}, which stages/{stage}.py imports: run `{COMMAND}`"
    assert not stale, f"dvc.yaml stage '{name}' lists {stale}, which stages/{stage}.py does not import: run `{COMMAND}`"
    assert "stages/layout.py" not in needed, f"stages/{stage}.py imports the layout tool; it is no stage's code"
    assert stage != "layout"


@pytest.fixture
def copy(tmp_path):
    """dvc.yaml and params.yaml in a folder of their own (the code read is this checkout's)."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_check_catches_a_removed_import_and_write_puts_it_back(copy, capsys):
    """Take one dep out of the train stage in a copy: --check names the stage, --write restores the file."""
    dvc = copy / "dvc.yaml"
    text = dvc.read_text()
    start = text.index("\n  train:\n")
    at = text.index("        - birdclef_eos/heads/crossval.py\n", start)
    assert at < text.index("\n  pseudo:", start)
    dvc.write_text(text[:at] + text[at:].replace("        - birdclef_eos/heads/crossval.py\n", "", 1))
    assert layout.main(["--check", "--root", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "train (deps)" in err and COMMAND in err
    assert layout.main(["--write", "--root", str(copy)]) == 0
    assert dvc.read_text() == text
    assert layout.main(["--check", "--root", str(copy)]) == 0


def test_write_keeps_comments_and_order_and_a_second_run_changes_nothing(copy):
    """Move the blend stage's module among its data deps and add an import it does not have: --write
    sorts the code back in front, drops the stale file, keeps every comment and the other deps' order;
    a second run changes no byte."""
    dvc = copy / "dvc.yaml"
    text = dvc.read_text()
    moved = "      - data/hidden\n      - stages/blend.py\n      - birdclef_eos/scoring/kaggle.py\n      - submissions/base\n"
    shuffled = text.replace("      - stages/blend.py\n", "").replace("      - data/hidden\n      - submissions/base\n", moved)
    assert shuffled.count(moved) == 1
    dvc.write_text(shuffled)
    assert layout.main(["--write", "--root", str(copy)]) == 0
    once = dvc.read_text()
    assert once == text
    assert layout.main(["--write", "--root", str(copy)]) == 0
    assert dvc.read_text() == once


def test_a_new_stage_gets_its_code_deps_without_typing_them(copy):
    """A stage written with no `deps:` (or `deps: []`) gets its code and notebook, after `cmd`."""
    dvc = copy / "dvc.yaml"
    dvc.write_text("stages:\n  figures:   # new\n    cmd: python -m stages.notebook figures\n    outs:\n      - x\n"
                   "  paper:\n    cmd: python -m stages.notebook paper\n    deps: []\n")
    assert layout.main(["--write", "--root", str(copy)]) == 0
    doc = yaml.safe_load(dvc.read_text())["stages"]
    assert list(doc["figures"]) == ["cmd", "deps", "outs"]
    assert doc["figures"]["deps"] == code_deps("figures") + ["notebooks/figures.ipynb"]
    assert "stages/figures.py" in doc["figures"]["deps"] and "stages/paper.py" in doc["paper"]["deps"]
    assert "notebooks/paper.ipynb" not in doc["paper"]["deps"]  # paper runs no notebook
    assert dvc.read_text().startswith("stages:\n  figures:   # new\n") and "deps: []" not in dvc.read_text()


def test_a_broken_entry_is_named(copy, capsys):
    dvc, params = copy / "dvc.yaml", copy / "params.yaml"
    dvc.write_text(dvc.read_text().replace("cmd: python -m stages.notebook blend", "cmd: python blend.py", 1))
    assert layout.main(["--check", "--root", str(copy)]) == 2
    assert "does not run `python -m stages.notebook <stage>`: python blend.py" in capsys.readouterr().err
    shutil.copy(ROOT / "dvc.yaml", dvc)
    params.write_text(params.read_text().replace("\nblends:", "\nblendz:", 1))
    assert layout.main(["--write", "--root", str(copy)]) == 2
    assert "params.yaml: 'blends' is missing" in capsys.readouterr().err
    assert dvc.read_bytes() == (ROOT / "dvc.yaml").read_bytes()  # nothing written


def chart_names(dvc: Path) -> list[str]:
    return [next(iter(entry)) for entry in yaml.safe_load(dvc.read_text())["plots"]]


def test_a_new_model_in_params_gets_its_curve_charts(copy, capsys):
    """Add a train variant, a student and a ViT size to params.yaml in a copy: --check names `plots`,
    --write adds each model's two charts in dvc.yaml's order (heads and students by name, ViT sizes last)
    and nothing else; taking them out of params.yaml again and writing gives back dvc.yaml's bytes."""
    dvc, params = copy / "dvc.yaml", copy / "params.yaml"
    text, before = dvc.read_text(), params.read_text()
    edited = before.replace("  variants:                  # one train@<key> stage each\n",
                            "  variants:                  # one train@<key> stage each\n"
                            "    abl_new:\n      head: attn\n      soundscape_fraction: 0.2\n", 1)
    edited = edited.replace("    mode: fold               # overrides pseudo.mode for this student\n",
                            "    mode: fold               # overrides pseudo.mode for this student\n"
                            "  pseudo_new:\n    twin: attn\n    sources: {focal: 0.75, soundscape: 0.15, pseudo: 0.10}\n", 1)
    edited = edited.replace("      image: 224             # 1 + (224/14)^2 = 257 position embeddings\n      init: null\n"
                            "      resize_pos_embed: false\n",
                            "      image: 224             # 1 + (224/14)^2 = 257 position embeddings\n      init: null\n"
                            "      resize_pos_embed: false\n    \"252\":\n      image: 252\n      init: null\n"
                            "      resize_pos_embed: false\n", 1)
    assert edited.count("abl_new:") == edited.count("pseudo_new:") == edited.count('"252":') == 1
    params.write_text(edited)
    assert layout.main(["--check", "--root", str(copy)]) == 1
    assert "plots (charts)" in capsys.readouterr().err
    assert layout.main(["--write", "--root", str(copy)]) == 0
    names, old = chart_names(dvc), chart_names(ROOT / "dvc.yaml")
    added = [f"{m}_{c}" for m in ("abl_new", "pseudo_new", "vit_252") for c in layout.CURVES]
    assert [n for n in names if n not in added] == old
    assert names.index("abl_new_loss") == names.index("abl_last3_val_macro_auc") + 1 and names[-2:] == added[-2:]
    assert names.index("pseudo_new_loss") == names.index("pseudo_fold_val_macro_auc") + 1
    chart = yaml.safe_load(dvc.read_text())["plots"][names.index("pseudo_new_val_macro_auc")]
    assert chart == {"pseudo_new_val_macro_auc": {
        "title": "pseudo_new: val_macro_auc per epoch, 5 folds", "x": "step",
        "y": {f"metrics/train/pseudo_new/curves/fold_{k}/plots/metrics/val_macro_auc.tsv": "val_macro_auc"
              for k in range(5)}}}
    assert '  - vit_252_loss:\n      title: "vit_252: loss per epoch, 1 fold"\n' in dvc.read_text()
    assert dvc.read_text().endswith(text[text.index("\nstages:"):])  # the blank line before `stages:` kept
    assert layout.main(["--check", "--root", str(copy)]) == 0
    params.write_text(before)
    assert layout.main(["--write", "--root", str(copy)]) == 0
    assert dvc.read_text() == text


@pytest.mark.parametrize("name", list(DVC["stages"]))
def test_declared_params_are_exactly_what_the_module_reads(name):
    body = DVC["stages"][name].get("do", DVC["stages"][name])
    stage = stage_of(body["cmd"])
    module = importlib.import_module(f"stages.{stage}")
    declared = {p.replace("${key}", "{key}") for p in body.get("params", []) if isinstance(p, str)}
    assert declared == set(module.PARAMS), (f"dvc.yaml '{name}' params {sorted(declared)} differ from "
                                            f"stages/{stage}.py PARAMS {sorted(module.PARAMS)}")
    assert not any(p.split(".")[0] == "runtime" for p in declared), f"{name}: `runtime` must stay unhashed"
    for p in module.PARAMS:
        node = PARAMS
        for part in p.split("."):
            node = next(iter(node.values())) if part == "{key}" else node[part]


def test_the_params_check_hands_no_stage_a_value():
    """Why stages/layout.py may leave the check out of every stage's code deps: a stage reaches it only
    through stages/params.py, and what a stage receives is params.yaml as read_yaml reads it, picked."""
    import copy

    from birdclef_eos.io.files import read_yaml
    from stages import schema
    from stages.params import declared, pick, stage_params

    check = ROOT / layout.CHECK
    importers = [p for p in sorted((ROOT / "stages").glob("*.py")) + sorted(NOTEBOOKS.glob("*.ipynb"))
                 if check in (layout.notebook_imports(p) if p.suffix == ".ipynb" else project_imports(p))]
    assert [p.relative_to(ROOT).as_posix() for p in importers] == ["stages/params.py"]
    raw = read_yaml(ROOT / "params.yaml")
    assert schema.load_params(ROOT / "params.yaml") == raw
    seen = copy.deepcopy(raw)
    schema.validate(seen)
    assert seen == raw, "the check changed a value it was handed"
    got = stage_params("protossm")
    for dotted in declared("protossm"):
        assert pick(got, dotted, "stage_params") == pick(raw, dotted, "params.yaml"), dotted
    fingerprint = set(DVC["stages"][layout.CHECK_STAGE]["deps"])
    assert layout.CHECK in fingerprint and all(layout.CHECK not in body["deps"] for n, body in stage_entries()
                                               if n != layout.CHECK_STAGE)


def library_files():
    return sorted((ROOT / "birdclef_eos").rglob("*.py"))


def test_library_never_imports_stages():
    for f in library_files():
        bad = [p for p in project_imports(f) if p.is_relative_to(ROOT / "stages")]
        assert not bad, f"{f.relative_to(ROOT)} imports {[str(p.relative_to(ROOT)) for p in bad]}"


def test_stage_modules_never_import_each_other():
    stages = {stage_of(body["cmd"]) for _, body in stage_entries()}
    for stage in stages:
        imported = {p.stem for p in project_imports(ROOT / "stages" / f"{stage}.py")
                    if p.parent == ROOT / "stages"}
        assert not imported & (stages - {stage}), f"stages/{stage}.py imports stage module(s) {imported & stages}"


def test_no_import_cycles():
    files = library_files() + sorted((ROOT / "stages").glob("*.py"))
    graph = {f: project_imports(f) - {f} for f in files}
    state: dict[Path, int] = {}

    def visit(f, trail):
        state[f] = 1
        for g in graph.get(f, ()):
            if state.get(g) == 1:
                raise AssertionError("import cycle: " + " -> ".join(p.relative_to(ROOT).as_posix() for p in trail + [g]))
            if g not in state:
                visit(g, trail + [g])
        state[f] = 2

    for f in files:
        if f not in state:
            visit(f, [f])


def test_every_library_package_has_a_readme():
    for pkg in sorted(p.parent for p in (ROOT / "birdclef_eos").rglob("__init__.py")):
        assert (pkg / "README.md").exists(), f"{pkg.relative_to(ROOT)}: no README.md saying what it holds"
