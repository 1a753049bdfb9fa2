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


def test_a_missing_module_says_how_to_fix_it():
    import sys

    from stages.notebook import MissingEnvironment, check_environment

    check_environment()  # the test's own interpreter has everything
    with pytest.raises(MissingEnvironment) as err:
        check_environment(("nbformat", "no_such_module_12b"))
    message = str(err.value)
    assert "source .venv/bin/activate" in message and "bash setup.sh" in message
    assert f"no_such_module_12b is missing from {sys.executable}" in message
    with pytest.raises(MissingEnvironment, match="no_such_pkg_12b.yaml is missing"):
        check_environment(("no_such_pkg_12b.yaml",))  # a dotted name whose parent is absent


def test_the_entry_stops_before_any_stage_runs(monkeypatch, capsys):
    from stages import notebook

    monkeypatch.setattr(notebook, "REQUIRED_MODULES", ("no_such_module_12b",))
    monkeypatch.setattr(notebook, "run_stage", lambda *a: pytest.fail("the stage ran"))
    assert notebook.main(["dataset"]) == 1
    assert "source .venv/bin/activate" in capsys.readouterr().err


def test_an_interpreter_without_the_environment_gets_the_fix():
    """`python -S` sees no site-packages, like a system python outside .venv."""
    import subprocess
    import sys

    from stages.paths import ROOT

    proc = subprocess.run([sys.executable, "-S", "-m", "stages.notebook", "dataset"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "run `source .venv/bin/activate` (or bash setup.sh) first: nbformat is missing from" in proc.stderr


def test_every_notebook_code_cell_compiles():
    """A syntax error in a notebook cell would only show when DVC runs the stage."""
    import glob
    import json
    for path in sorted(glob.glob(str(NOTEBOOKS / "*.ipynb"))):
        for i, cell in enumerate(json.load(open(path))["cells"]):
            if cell["cell_type"] == "code":
                src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                compile(src, f"{path} cell {i}", "exec")
