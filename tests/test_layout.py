"""dvc.yaml, params.yaml and the stage modules agree with each other."""
import importlib
import re

import yaml

from stages.paths import NOTEBOOKS, ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def stage_of(cmd: str) -> str:
    match = re.search(r"python -m stages\.notebook (\w+)", cmd)
    assert match, f"stage command does not run a notebook: {cmd}"
    return match.group(1)


def stage_entries():
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        yield name, body


def test_every_stage_runs_its_notebook():
    for name, body in stage_entries():
        stage = stage_of(body["cmd"])
        assert (NOTEBOOKS / f"{stage}.ipynb").exists(), f"{name}: notebooks/{stage}.ipynb missing"
        assert f"notebooks/{stage}.ipynb" in body["deps"], f"{name}: notebook not a dep"
        assert f"stages/{stage}.py" in body["deps"], f"{name}: stage module not a dep"


def test_declared_params_cover_what_each_stage_reads():
    for name, body in stage_entries():
        module = importlib.import_module(f"stages.{stage_of(body['cmd'])}")
        declared = {str(p).split(".")[0] for p in body.get("params", [])}
        for section in module.PARAMS:
            assert section in PARAMS, f"params.yaml lacks section '{section}'"
            assert section in declared, f"{name}: reads '{section}' but dvc.yaml does not declare it"


def test_stage_modules_never_import_each_other():
    stages = {stage_of(body["cmd"]) for _, body in stage_entries()}
    for stage in stages:
        source = (ROOT / "stages" / f"{stage}.py").read_text()
        for other in stages - {stage}:
            assert not re.search(rf"^\s*(from stages import .*\b{other}\b|from stages\.{other} import|import stages\.{other}\b)",
                                 source, re.M), f"stages/{stage}.py imports stage module {other}"
