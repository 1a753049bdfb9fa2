"""Run a stage's notebook with papermill: ``python -m stages.notebook <stage> [--key K]``.

The notebook ``notebooks/<stage>.ipynb`` gets the stage's params.yaml sections as the
parameter ``params`` (and ``key`` for dict-keyed foreach stages). The executed copy is
written to ``reports/<stage>[@key].ipynb`` with timestamps, durations, kernel ids and
stderr streams (progress bars) removed, so the same run gives the same bytes.
Cell output is streamed to the terminal while it runs, so progress bars stay visible.
A stage module that sets ``NOTEBOOK = False`` (the cheap `fingerprint` stage, run on every repro;
the `bundle` stage, re-run on every `blend.*` change) has its ``run(params, key)`` called
directly, with no notebook and no report; what it returns (a path, or a result whose ``str`` says
what it wrote) is printed.

It is the entry of every stage command, so it first checks that it runs in the project's
environment (``check_environment``): DVC has already deleted the stage's outputs by then, and a
bare "No module named ..." from deep inside would not say what to do.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from birdclef_eos.io.files import atomic_path
from stages.paths import NOTEBOOKS, REPORTS, ROOT

if TYPE_CHECKING:  # only for the annotations: the module imports nbformat after the environment check
    import nbformat

# what every stage needs from .venv (only looked up, not imported, before the check passes)
REQUIRED_MODULES = ("nbformat", "papermill", "ipykernel", "numpy", "pandas", "ruamel.yaml", "pydantic")


class NotebookError(RuntimeError):
    pass


class MissingEnvironment(NotebookError):
    """The interpreter running the stage lacks a module the pipeline needs."""


def module_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a missing parent package of a dotted name
        return True


def check_environment(modules: tuple[str, ...] | None = None) -> None:
    """Raise MissingEnvironment naming the first missing module (of ``REQUIRED_MODULES`` by
    default), the interpreter and the fix."""
    for name in REQUIRED_MODULES if modules is None else modules:
        if module_missing(name):
            raise MissingEnvironment(
                f"run `source .venv/bin/activate` (or bash setup.sh) first: {name} is missing from "
                f"{sys.executable}")


def check_parameters_cell(path: Path) -> None:
    """Fail unless the notebook has a code cell tagged ``parameters`` (papermill needs it;
    without one the notebook's defaults would silently win)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return
    raise NotebookError(f"{path}: no code cell tagged 'parameters'; papermill cannot pass params")


def strip_volatile(nb: "nbformat.NotebookNode") -> "nbformat.NotebookNode":
    """Remove what changes from run to run: timings, ids, stderr (progress bars)."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue
            if "execution_count" in out:
                out["execution_count"] = None
            out.get("metadata", {}).pop("execution", None)
            outputs.append(out)
        cell.outputs = outputs
    return nb


def report_path(stage: str, key: str | None) -> Path:
    return REPORTS / (f"{stage}@{key}.ipynb" if key else f"{stage}.ipynb")


def run_notebook(stage: str, key: str | None = None, params: dict | None = None,
                 notebook: Path | None = None, report: Path | None = None) -> Path:
    import nbformat
    import papermill as pm

    notebook = notebook or NOTEBOOKS / f"{stage}.ipynb"
    report = report or report_path(stage, key)
    if not notebook.exists():
        raise NotebookError(f"{notebook}: notebook for stage '{stage}' not found")
    check_parameters_cell(notebook)
    if params is None:
        from stages.params import stage_params  # after the environment check: the schema imports pydantic
        params = stage_params(stage, key)
    with atomic_path(report) as tmp:
        pm.execute_notebook(
            str(notebook), str(tmp), parameters={"params": params, "key": key},
            kernel_name="python3", language="python", progress_bar=False,
            shutdown_kernel="immediate",  # nbclient: no graceful wait at the end (0.3 s per stage)
            cwd=str(ROOT), stdout_file=sys.stdout, stderr_file=sys.stderr,
        )
        nb = strip_volatile(nbformat.read(tmp, as_version=4))
        nbformat.write(nb, tmp)
    return report


def run_stage(stage: str, key: str | None = None) -> str:
    """Run a stage: its notebook, or its ``run`` directly when its module sets ``NOTEBOOK = False``;
    return what to print (the report written, or the run's result)."""
    # a notebook stage's module is imported only inside the kernel: importing it here too (torch,
    # sklearn, ...) cost about 2 s per stage. tests/stages/test_layout.py holds that a stage has a
    # notebook exactly when its module does not set ``NOTEBOOK = False``.
    if (NOTEBOOKS / f"{stage}.ipynb").exists():
        return f"wrote {run_notebook(stage, key)}"
    module = importlib.import_module(f"stages.{stage}")
    if getattr(module, "NOTEBOOK", True) is not False:
        raise NotebookError(f"{NOTEBOOKS / (stage + '.ipynb')}: notebook for stage '{stage}' not found")
    from stages.params import stage_params  # after the environment check: the schema imports pydantic

    result = module.run(stage_params(stage, key), key)
    return f"wrote {result}" if isinstance(result, (str, Path)) else str(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("--key", default=None, help="foreach key, e.g. 'attn' for train@attn")
    args = parser.parse_args(argv)
    try:
        check_environment()
    except MissingEnvironment as exc:
        print(f"stage '{args.stage}' cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        out = run_stage(args.stage, args.key)
    except Exception as exc:  # papermill's error already carries the notebook traceback
        print(f"stage '{args.stage}' failed: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
