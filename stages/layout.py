"""dvc.yaml's derivable half, written from the source and params.yaml: ``python -m stages.layout --write``.

A tool, not a stage: it has no dvc.yaml entry and no stage imports it. ``--write`` rewrites dvc.yaml in
place through ruamel.yaml's round-trip (every comment, the key order and every other entry kept) and
atomically; ``--check`` writes nothing and exits 1 naming the stale stages (tests/stages/test_layout.py
holds dvc.yaml current). A second ``--write`` changes nothing: every list is rebuilt in a fixed order.

What it writes in each stage (``do:`` of a foreach stage):

- deps, first the code: every project file (birdclef_eos/, stages/) that the stage's module, the code
  cells of its notebook and stages/notebook.py (the runner every ``cmd`` calls) import, transitively,
  plus the files the stage runs by path (RUN_BY_PATH), sorted; then notebooks/<stage>.ipynb when the
  stage has a notebook; then the stage's other deps (data, models, ...) as they were. Editing one of
  those files re-runs the stage, and no other project file does. One exception, by design: the params
  check (CHECK, stages/schema.py, and what only it imports: the typed config models, the registries it
  reads allowed values from) is no stage's code dep but that of CHECK_STAGE. Every stage runs the check
  before any work (stages/params.py ``stage_params``), but the check only passes or refuses: the values a
  stage receives are read_yaml's, picked by stages/params.py (tests/stages/test_layout.py holds both), so
  editing the check cannot change an output's bytes. CHECK_STAGE (`fingerprint`) runs on every
  `dvc repro` and first, so a stricter check still refuses a bad params.yaml before anything re-runs.
  Leaving it out keeps dvc.lock a fifth smaller (DVC rewrites it after every stage an experiment
  re-runs) and an edit of the check from re-running the whole pipeline.
- the lists params.yaml decides (PARAM_LISTS), each the ``submissions/...`` entries of one list: the
  blend stage's outs (one per ``blends:`` entry, in order) and its part deps (every part or sidecar
  that is not itself a blend, sorted); the submit stage's outs (one per ``submissions:`` entry, in
  order); the base stage's outs (``submissions/base``, then one per ``base.variants`` entry); the
  bundle stage's manifest deps (``submissions/<name>/manifest.json`` of every submission a bundle
  rebuilds, parts included, sorted). Adding a blend, a submission, a base variant or a bundle is
  therefore an edit of params.yaml and this command.
- the top-level ``plots:`` curve charts (``curve_plots``): two per model that logs DVCLive curves
  (loss, val_macro_auc), its folds overlaid: protossm, sed and the sidecar, every ``train.variants``
  and ``students`` entry, every ``vit.sizes`` entry, each over the folds params.yaml gives it. A chart
  whose files are not all fold curves is kept where it is. A new variant, student or ViT size is
  therefore charted by this command too.

A new stage needs no code deps typed: without `deps:` (or with `deps: []`) it gets the list, after `cmd`.
A comment on a list item moves with the item; a blank line after a list's last item stays after the
last item. The code read is this checkout's; ``--root`` names the folder whose dvc.yaml and params.yaml
are rewritten (a copy of the repository, as the tests use).
"""
from __future__ import annotations

import argparse
import ast
import copy
import functools
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from birdclef_eos.io.files import read_yaml, write_text
from stages.params import pick
from stages.paths import ROOT

COMMAND = "python -m stages.layout --write"
PROJECT = ("birdclef_eos", "stages")
RUNNER = "stages/notebook.py"
# files a stage runs by path in a subprocess (the converters run under .venv-convert), not imported
RUN_BY_PATH = {"checkpoint": ("birdclef_eos/backbone/tflite_to_onnx.py", "birdclef_eos/backbone/savedmodel_to_onnx.py")}
SUBMISSIONS = "submissions/"
CHECK = "stages/schema.py"  # the params check: passes or refuses, hands no stage a value
CHECK_STAGE = "fingerprint"  # the always-run first stage: the one whose code deps include the check


def by_registry(stage: str) -> list[str]:
    """Modules a stage loads by name through a registry, not by an import statement: the checkpoint
    stage builds the backbone `backbone.name` names with its registry entry's module."""
    if stage != "checkpoint":
        return []
    from birdclef_eos.backbone.registry import BACKBONES  # standard library only
    return sorted({spec.module for spec in BACKBONES.values()})


class LayoutError(ValueError):
    """dvc.yaml or params.yaml cannot be read into the layout; the message names the file and the entry."""


# ---------- the code deps ----------

def stage_of(cmd: str) -> str:
    """The stage module a dvc.yaml ``cmd`` runs (``python -m stages.notebook <stage> ...``)."""
    match = re.search(r"python -m stages\.notebook (\w+)", str(cmd))
    if not match:
        raise LayoutError(f"stage command does not run `python -m stages.notebook <stage>`: {cmd}")
    return match.group(1)


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of the dotted module ``name`` under ``root`` (a module or a package's __init__.py)."""
    for candidate in (root / (name.replace(".", "/") + ".py"), root / name.replace(".", "/") / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_names(tree: ast.AST) -> list[str]:
    """Every absolute import's dotted names (``from a.b import c`` gives a.b and a.b.c)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def project_files(names: list[str], root: Path = ROOT) -> set[Path]:
    return {f for name in names if name.split(".")[0] in PROJECT and (f := module_file(name, root))}


@functools.lru_cache(maxsize=None)
def _names_in(path: Path, stamp: tuple[int, int]) -> tuple[str, ...]:
    """Every import in ``path`` (parsed once per content stamp: a closure meets a file many times)."""
    return tuple(imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path))))


def project_imports(path: Path, root: Path = ROOT) -> set[Path]:
    """Project files ``path`` imports directly (``from a.b import c`` counts a/b.py and a/b/c.py)."""
    stat = path.stat()
    return project_files(list(_names_in(path, (stat.st_mtime_ns, stat.st_size))), root)


def notebook_imports(path: Path, root: Path = ROOT) -> set[Path]:
    """Project files the code cells of notebook ``path`` import directly (IPython's %/! lines skipped)."""
    out = set()
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            raise LayoutError(f"{path}: code cell {i} does not parse (line {exc.lineno}): {exc.msg}") from None
        out |= project_files(imported_names(tree), root)
    return out


def closure(paths: set[Path], root: Path = ROOT, skip: frozenset[Path] = frozenset()) -> set[Path]:
    """``paths`` and every project file they import, transitively, never entering a file in ``skip``."""
    seen, todo = set(), list(paths)
    while todo:
        f = todo.pop()
        if f not in seen and f not in skip:
            seen.add(f)
            todo.extend(project_imports(f, root))
    return seen


def notebook_dep(stage: str, root: Path = ROOT) -> str | None:
    """notebooks/<stage>.ipynb when the stage runs one (a stage setting NOTEBOOK = False has none)."""
    path = root / "notebooks" / f"{stage}.ipynb"
    return path.relative_to(root).as_posix() if path.exists() else None


def has_code(path: Path) -> bool:
    """False for an __init__.py that is empty or holds only its docstring (nothing it runs can change a result)."""
    if path.name != "__init__.py":
        return True
    body = ast.parse(path.read_text(encoding="utf-8"), str(path)).body
    return not all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                   for n in body)


def code_deps(stage: str, root: Path = ROOT) -> list[str]:
    """The project files stage ``stage`` runs, sorted: its module, its notebook's imports and the
    runner's, and the modules it loads through a registry (``by_registry``), transitively (an
    __init__.py without code left out), plus RUN_BY_PATH; the params check (CHECK) and what only it
    imports are left out, except for CHECK_STAGE."""
    module = root / "stages" / f"{stage}.py"
    if not module.exists():
        raise LayoutError(f"{module.relative_to(root)}: no module for stage '{stage}'")
    start = {module, root / RUNNER} | {module_file(m, root) for m in by_registry(stage)}
    if nb := notebook_dep(stage, root):
        start |= notebook_imports(root / nb, root)
    files = closure(start, root, frozenset() if stage == CHECK_STAGE else frozenset({root / CHECK}))
    rel = {f.relative_to(root).as_posix() for f in files if has_code(f)}
    return sorted(rel | set(RUN_BY_PATH.get(stage, ())))


def is_code_dep(dep) -> bool:
    """A dep this tool owns: a .py file or a notebook (anything else in deps is kept as it is)."""
    return isinstance(dep, str) and (dep.endswith(".py") or (dep.startswith("notebooks/") and dep.endswith(".ipynb")))


# ---------- the lists params.yaml decides ----------

def section(params: dict, dotted: str, source: str) -> dict:
    try:
        node = pick(params, dotted, source)
    except KeyError as exc:
        raise LayoutError(exc.args[0]) from None
    if not isinstance(node, dict):
        raise LayoutError(f"{source}: '{dotted}' must be a mapping, got {type(node).__name__}")
    return node


def blend_outs(params: dict, source: str) -> list[str]:
    return [SUBMISSIONS + name for name in section(params, "blends", source)]


def blend_parts(params: dict, source: str) -> list[str]:
    """Every submission a ``blends:`` entry reads that is not itself a blend (those are outs)."""
    blends = section(params, "blends", source)
    parts = set()
    for name, entry in blends.items():
        side = entry.get("sidecar") if isinstance(entry, dict) else None
        parts |= set(section(params, f"blends.{name}.parts", source))
        if isinstance(side, dict) and "submission" in side:
            parts.add(side["submission"])
    return [SUBMISSIONS + p for p in sorted(str(p) for p in parts - set(blends))]


def submit_outs(params: dict, source: str) -> list[str]:
    return [SUBMISSIONS + name for name in section(params, "submissions", source)]


def base_outs(params: dict, source: str) -> list[str]:
    return [SUBMISSIONS + "base"] + [SUBMISSIONS + name for name in section(params, "base.variants", source)]


def bundle_manifests(params: dict, source: str) -> list[str]:
    """The manifest of every submission a bundle rebuilds: its own and, for a blend, its parts' and
    sidecar's, nested blends followed (the bundle stage reads `blend:` and the post-processing knobs there)."""
    blends = section(params, "blends", source)
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        entry = blends.get(name)
        if isinstance(entry, dict):
            for part in section(params, f"blends.{name}.parts", source):
                visit(str(part))
            side = entry.get("sidecar")
            if isinstance(side, dict) and "submission" in side:
                visit(str(side["submission"]))

    for name, entry in section(params, "bundles", source).items():
        if not isinstance(entry, dict) or "submission" not in entry:
            raise LayoutError(f"{source}: bundles.{name} has no `submission`")
        visit(str(entry["submission"]))
    return [f"{SUBMISSIONS}{name}/manifest.json" for name in sorted(seen)]


# (stage module, list) -> its submissions/... entries; the list's other entries are kept
PARAM_LISTS: dict[tuple[str, str], Callable[[dict, str], list[str]]] = {
    ("blend", "outs"): blend_outs,
    ("blend", "deps"): blend_parts,
    ("submit", "outs"): submit_outs,
    ("base", "outs"): base_outs,
    ("bundle", "deps"): bundle_manifests,
}


# ---------- the plots params.yaml decides ----------

CURVES = ("loss", "val_macro_auc")  # what every stage that trains folds logs (birdclef_eos/report/curves.py)


def count(params: dict, dotted: str, source: str) -> int:
    try:
        value = pick(params, dotted, source)
    except KeyError as exc:
        raise LayoutError(exc.args[0]) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise LayoutError(f"{source}: '{dotted}' must be an integer, got {value!r}")
    return value


def curve_models(params: dict, source: str) -> list[tuple[str, str, int]]:
    """(chart name, curves folder under metrics/, folds) of every model that logs DVCLive curves, in
    dvc.yaml's order: the chain's protossm (the heads' `train.n_folds`) and SED (`base.sed.folds`, at
    least one model), the sidecar head (`train.n_folds`), every `train.variants` and `students` entry
    (`train.n_folds`; sorted by name, both under metrics/train/), every `vit.sizes` entry (`vit.folds`)."""
    n_folds = count(params, "train.n_folds", source)
    heads = sorted({str(k) for k in section(params, "train.variants", source)} |
                   {str(k) for k in section(params, "students", source)})
    vit_folds = count(params, "vit.folds", source)
    return ([("protossm", "metrics/protossm/curves", n_folds),
             ("sed", "metrics/sed/curves", max(1, count(params, "base.sed.folds", source))),
             ("sidecar", "metrics/sidecar/curves", n_folds)]
            + [(name, f"metrics/train/{name}/curves", n_folds) for name in heads]
            + [(f"vit_{size}", f"metrics/vit/{size}/curves", vit_folds) for size in section(params, "vit.sizes", source)])


def curve_plots(params: dict, source: str) -> list[dict]:
    """dvc.yaml's `plots:` chart per model and curve, its folds overlaid (``curve_models``)."""
    out = []
    for name, folder, folds in curve_models(params, source):
        for curve in CURVES:
            title = f"{name}: {curve} per epoch, {folds} fold{'' if folds == 1 else 's'}"
            y = {f"{folder}/fold_{k}/plots/metrics/{curve}.tsv": curve for k in range(folds)}
            out.append({f"{name}_{curve}": {"title": title, "x": "step", "y": y}})
    return out


def is_curve_plot(entry) -> bool:
    """A `plots:` entry this tool owns: one chart whose every file is a DVCLive fold curve (any other is kept)."""
    if not isinstance(entry, dict) or len(entry) != 1:
        return False
    spec = next(iter(entry.values()))
    y = spec.get("y") if isinstance(spec, dict) else None
    return isinstance(y, dict) and bool(y) and all("/curves/fold_" in str(f) for f in y)


def as_yaml(entry: dict) -> CommentedMap:
    """A chart as dvc.yaml writes it (the title double-quoted)."""
    (name, spec), = entry.items()
    body = CommentedMap([("title", DoubleQuotedScalarString(spec["title"])), ("x", spec["x"]),
                         ("y", CommentedMap(spec["y"]))])
    return CommentedMap([(name, body)])


def wanted_plots(plots: CommentedSeq, params: dict, source: str) -> list:
    """``plots`` with its curve charts replaced by ``curve_plots``, where the first stood; a chart that
    is already as it should be stays the same object (its comments with it)."""
    have = {json.dumps(e): e for e in plots if is_curve_plot(e)}
    new = [have.get(json.dumps(e)) or as_yaml(e) for e in curve_plots(params, source)]
    hits = [i for i, e in enumerate(plots) if is_curve_plot(e)]
    rest = [e for i, e in enumerate(plots) if i not in set(hits)]
    at = hits[0] if hits else len(rest)
    out = rest[:at] + new + rest[at:]
    if plots and out and out[-1] is not plots[-1]:  # the blank line after the section follows its last chart
        move_tail(plots[-1], out[-1])
    return out


def last_line(node) -> tuple[CommentedMap, object]:
    """The mapping and key of the last line a nested mapping writes (where its trailing comment sits)."""
    key = list(node)[-1]
    while isinstance(node[key], CommentedMap) and node[key]:
        node = node[key]
        key = list(node)[-1]
    return node, key


def move_tail(old, new) -> None:
    """Move the comment after ``old``'s last line (the blank line before the next section) to after ``new``'s."""
    if not (isinstance(old, CommentedMap) and old and isinstance(new, CommentedMap) and new):
        return
    (src, skey), (dst, dkey) = last_line(old), last_line(new)
    token = src.ca.items.pop(skey, None)
    if token:
        dst.ca.items[dkey] = token


def splice(items: list, prefix: str, new: list[str]) -> list:
    """``items`` with its entries starting with ``prefix`` replaced by ``new``, where the first stood
    (at the end when none did)."""
    hits = [i for i, v in enumerate(items) if isinstance(v, str) and v.startswith(prefix)]
    rest = [v for i, v in enumerate(items) if i not in set(hits)]
    at = hits[0] if hits else len(rest)
    return rest[:at] + list(new) + rest[at:]


# ---------- rewriting a list in place, comments kept ----------

def item_key(value) -> object:
    return value if isinstance(value, str) else id(value)


def with_tail(token, tail: str):
    """``token`` (an end-of-line comment, or None) followed by ``tail`` (blank lines); None when both are empty."""
    if not tail:
        return token
    new = copy.copy(token[0]) if token and token[0] is not None else None
    if new is None:
        new = CommentToken("\n" + tail, CommentMark(0))
    else:
        new.value = new.value + tail
    return [new, *(token[1:] if token else [None, None, None])]


def split_tail(token) -> tuple[object, str]:
    """(the end-of-line comment, the blank lines after it) of a list item's comment token."""
    if not token or token[0] is None or "\n" not in token[0].value:
        return token, ""
    value = token[0].value
    cut = value.index("\n") + 1
    head, tail = value[:cut], value[cut:]
    if head.strip() == "":
        return (None if not any(token[1:]) else [None, *token[1:]]), tail
    eol = copy.copy(token[0])
    eol.value = head
    return [eol, *token[1:]], tail


def replace_items(seq: CommentedSeq, new: list) -> bool:
    """Make ``seq`` hold ``new``: each item's comment moves with it, the blank lines after the old
    last item follow the new last one. Returns whether anything changed."""
    old = list(seq)
    if old == new:
        return False
    tokens = {item_key(v): seq.ca.items.get(i) for i, v in enumerate(old)}
    tail = ""
    if old:
        tokens[item_key(old[-1])], tail = split_tail(tokens.get(item_key(old[-1])))
    list.__delitem__(seq, slice(None))
    list.extend(seq, new)
    seq.ca.items.clear()
    for i, v in enumerate(new):
        token = tokens.get(item_key(v))
        if i == len(new) - 1:
            token = with_tail(token, tail)
        if token:
            seq.ca.items[i] = token
    return True


# ---------- dvc.yaml ----------

def yaml_rt() -> YAML:
    """The round-trip reader/writer; its layout is dvc.yaml's (a dump of an unchanged file is byte-identical)."""
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def stage_bodies(doc, source: str):
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        raise LayoutError(f"{source}: no `stages:` mapping")
    for name, stage in stages.items():
        body = stage.get("do", stage) if isinstance(stage, dict) else None
        if not isinstance(body, dict) or "cmd" not in body:
            raise LayoutError(f"{source}: stage '{name}' has no `cmd`")
        yield name, body


def wanted_deps(stage: str, deps: list, root: Path) -> list:
    nb = notebook_dep(stage, root)
    return code_deps(stage, root) + ([nb] if nb else []) + [d for d in deps if not is_code_dep(d)]


def update(doc, params: dict, dvc_source: str, params_source: str, code_root: Path = ROOT) -> dict[str, list[str]]:
    """Rewrite ``doc`` (dvc.yaml, round-trip loaded) in place; return {stage: [lists changed]}."""
    stale: dict[str, list[str]] = {}
    for name, body in stage_bodies(doc, dvc_source):
        stage = stage_of(body["cmd"])
        if "deps" not in body:  # a new stage: its code is at least a dep; the list goes after `cmd`
            body.insert(list(body).index("cmd") + 1, "deps", CommentedSeq())
        deps = body["deps"]
        if not isinstance(deps, CommentedSeq):
            raise LayoutError(f"{dvc_source}: stage '{name}': `deps:` must be a list, got {type(deps).__name__}")
        wanted = {"deps": wanted_deps(stage, list(deps), code_root)}
        for (owner, field), make in PARAM_LISTS.items():
            if owner != stage:
                continue
            items = wanted.get(field, list(body.get(field) or []))
            if field not in body or not isinstance(body[field], CommentedSeq):
                raise LayoutError(f"{dvc_source}: stage '{name}' has no `{field}:` list")
            wanted[field] = splice(items, SUBMISSIONS, make(params, params_source))
        for field, items in wanted.items():
            if items and body[field].fa.flow_style():  # `deps: []` of a new stage: written one item a line
                body[field].fa.set_block_style()
            if replace_items(body[field], items):
                stale.setdefault(name, []).append(field)
    plots = doc.get("plots")
    if isinstance(plots, CommentedSeq) and replace_items(plots, wanted_plots(plots, params, params_source)):
        stale["plots"] = ["charts"]
    return stale


def render(root: Path = ROOT, code_root: Path = ROOT) -> tuple[str, str, dict[str, list[str]]]:
    """(dvc.yaml's text now, as it should be, {stale stage: [lists]}) for the dvc.yaml and params.yaml in ``root``."""
    dvc_path, params_path = root / "dvc.yaml", root / "params.yaml"
    for path in (dvc_path, params_path):
        if not path.exists():
            raise LayoutError(f"{path}: not found")
    params = read_yaml(params_path, LayoutError)
    if not isinstance(params, dict):
        raise LayoutError(f"{params_path}: expected a mapping of sections")
    yaml = yaml_rt()
    text = dvc_path.read_text(encoding="utf-8")
    doc = yaml.load(text)
    stale = update(doc, params, str(dvc_path), str(params_path), code_root)
    out = io.StringIO()
    yaml.dump(doc, out)
    return text, out.getvalue(), stale


def describe(stale: dict[str, list[str]]) -> str:
    return ", ".join(f"{name} ({' and '.join(fields)})" for name, fields in stale.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's derived lists in place")
    mode.add_argument("--check", action="store_true", help="exit 1 naming the stages whose derived lists are stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder holding dvc.yaml and params.yaml")
    args = parser.parse_args(argv)
    try:
        before, after, stale = render(args.root)
    except LayoutError as exc:
        print(f"stages.layout: {exc}", file=sys.stderr)
        return 2
    dvc_path = args.root / "dvc.yaml"
    if args.check:
        if before != after:
            print(f"{dvc_path} is stale in stage(s) {describe(stale) or '(formatting only)'}: run `{COMMAND}`",
                  file=sys.stderr)
            return 1
        print(f"{dvc_path} is current")
        return 0
    if before != after:
        write_text(dvc_path, after)
        print(f"rewrote {dvc_path}: {describe(stale)}")
    else:
        print(f"{dvc_path} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
