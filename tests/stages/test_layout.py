"""dvc.yaml, params.yaml and the code agree, and the house keeps its shape.

- Each stage's code deps in dvc.yaml are exactly the project modules it imports, transitively
  (plus files it runs by path), derived here from the source: editing any of them re-runs it.
- Each stage's `params:` are exactly the knobs its module declares in PARAMS.
- The library (birdclef_eos) never imports stages; no stage module imports another; no cycles.
"""
import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from birdclef_eos.backbone.registry import BACKBONES
from stages.paths import NOTEBOOKS, ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
RUN_BY_PATH = {"checkpoint": ["birdclef_eos/backbone/tflite_to_onnx.py", "birdclef_eos/backbone/savedmodel_to_onnx.py"]}  # subprocess, not imported
PROJECT = ("birdclef_eos", "stages")
# modules a stage loads by name through a registry, not by an import statement: the checkpoint stage
# builds the backbone `backbone.name` names with its registry entry's module (birdclef_eos/backbone/registry.py)
BY_REGISTRY = {"checkpoint": sorted({spec.module for spec in BACKBONES.values()})}


def stage_of(cmd: str) -> str:
    match = re.search(r"python -m stages\.notebook (\w+)", cmd)
    assert match, f"stage command does not run a notebook: {cmd}"
    return match.group(1)


def stage_entries():
    for name, stage in DVC["stages"].items():
        yield name, stage.get("do", stage)


def module_file(name: str) -> Path | None:
    for candidate in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def project_imports(path: Path) -> set[Path]:
    """Project files ``path`` imports directly (``from a.b import c`` counts a/b.py and a/b/c.py)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in PROJECT and (f := module_file(name)):
                out.add(f)
    return out


def closure(path: Path) -> set[Path]:
    seen, todo = set(), [path]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(project_imports(f))
    return seen


def code_deps(stage: str) -> set[str]:
    files = closure(ROOT / "stages" / f"{stage}.py") | closure(ROOT / "stages" / "notebook.py")
    for module in BY_REGISTRY.get(stage, []):
        files |= closure(module_file(module))
    rel = {f.relative_to(ROOT).as_posix() for f in files if f.name != "__init__.py" or f.stat().st_size}
    return rel | set(RUN_BY_PATH.get(stage, []))


# cheap stages that skip the notebook because an experiment re-runs them and a kernel would cost
# more than their work: bundle@<name> (every key re-runs on a `blend.*` change), the publish copy
# (`dvc exp run -S blend.weight=...` must stay fast) and submit (every `postprocess.*` change)
NOTEBOOK_FREE = {"bundle", "publish", "submit"}


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


@pytest.mark.parametrize("name", list(DVC["stages"]))
def test_code_deps_are_exactly_the_imports(name):
    body = DVC["stages"][name].get("do", DVC["stages"][name])
    stage = stage_of(body["cmd"])
    listed = {d for d in body["deps"] if d.endswith(".py")}
    needed = code_deps(stage)
    missing, stale = sorted(needed - listed), sorted(listed - needed)
    assert not missing, f"dvc.yaml stage '{name}' does not list {missing}, which stages/{stage}.py imports"
    assert not stale, f"dvc.yaml stage '{name}' lists {stale}, which stages/{stage}.py does not import"


def test_the_deps_check_catches_a_removed_import():
    """Take one dep out of a copy of the train stage: the derivation above notices."""
    body = DVC["stages"]["train"]["do"]
    listed = {d for d in body["deps"] if d.endswith(".py")} - {"birdclef_eos/heads/crossval.py"}
    assert sorted(code_deps("train") - listed) == ["birdclef_eos/heads/crossval.py"]


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
