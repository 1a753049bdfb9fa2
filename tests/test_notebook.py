"""The notebook stage runner: the parameters check, params injection, byte-stable reports."""
from pathlib import Path

import nbformat
import pytest

from stages.notebook import NotebookError, check_parameters_cell, run_notebook, strip_volatile
from stages.paths import NOTEBOOKS


def write_notebook(path: Path, tagged: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("params = None\nkey = None")
    if tagged:
        params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import sys\nprint('progress', file=sys.stderr)\nprint(params['demo']['x'] * 2, key)")
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), params, body]
    nbformat.write(nb, path)
    return path


def test_missing_parameters_cell_is_an_error(tmp_path):
    path = write_notebook(tmp_path / "bad.ipynb", tagged=False)
    with pytest.raises(NotebookError, match="parameters"):
        check_parameters_cell(path)


def test_every_stage_notebook_has_a_parameters_cell():
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "no stage notebooks found"
    for path in notebooks:
        check_parameters_cell(path)


def test_run_injects_params_and_report_is_byte_stable(tmp_path):
    nb = write_notebook(tmp_path / "demo.ipynb")
    first = run_notebook("demo", key="k", params={"demo": {"x": 21}}, notebook=nb,
                         report=tmp_path / "a.ipynb")
    second = run_notebook("demo", key="k", params={"demo": {"x": 21}}, notebook=nb,
                          report=tmp_path / "b.ipynb")
    outputs = nbformat.read(first, as_version=4).cells[-1].outputs
    assert [o.get("name") for o in outputs] == ["stdout"]  # stderr (progress bars) is stripped
    assert outputs[0]["text"].strip() == "42 k"
    assert first.read_bytes() == second.read_bytes()


def test_strip_volatile_removes_timings():
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"start_time": "2026-01-01", "duration": 1.0}
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    cell.execution_count = 7
    nb.cells = [cell]
    out = strip_volatile(nb)
    assert "papermill" not in out.metadata
    assert "execution" not in out.cells[0].metadata
    assert out.cells[0].execution_count is None
