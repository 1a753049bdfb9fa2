"""Run a stage's notebook with papermill: ``python -m stages.notebook <stage> [--key K]``.

The notebook ``notebooks/<stage>.ipynb`` gets the stage's params.yaml sections as the
parameter ``params`` (and ``key`` for dict-keyed foreach stages). The executed copy is
written to ``reports/<stage>[@key].ipynb`` with timestamps, durations, kernel ids and
stderr streams (progress bars) removed, so the same run gives the same bytes.
Cell output is streamed to the terminal while it runs, so progress bars stay visible.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from birdclef_eos.io.files import atomic_path
from stages.params import stage_params
from stages.paths import NOTEBOOKS, REPORTS, ROOT


class NotebookError(RuntimeError):
    pass


def check_parameters_cell(path: Path) -> None:
    """Fail unless the notebook has a code cell tagged ``parameters`` (papermill needs it;
    without one the notebook's defaults would silently win)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return
    raise NotebookError(f"{path}: no code cell tagged 'parameters'; papermill cannot pass params")


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
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
    import papermill as pm

    notebook = notebook or NOTEBOOKS / f"{stage}.ipynb"
    report = report or report_path(stage, key)
    if not notebook.exists():
        raise NotebookError(f"{notebook}: notebook for stage '{stage}' not found")
    check_parameters_cell(notebook)
    if params is None:
        params = stage_params(stage, key)
    with atomic_path(report) as tmp:
        pm.execute_notebook(
            str(notebook), str(tmp), parameters={"params": params, "key": key},
            kernel_name="python3", language="python", progress_bar=False,
            cwd=str(ROOT), stdout_file=sys.stdout, stderr_file=sys.stderr,
        )
        nb = strip_volatile(nbformat.read(tmp, as_version=4))
        nbformat.write(nb, tmp)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("--key", default=None, help="foreach key, e.g. 'attn' for train@attn")
    args = parser.parse_args(argv)
    try:
        out = run_notebook(args.stage, args.key)
    except Exception as exc:  # papermill's error already carries the notebook traceback
        print(f"stage '{args.stage}' failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
