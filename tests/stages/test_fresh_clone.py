"""Every DVC command a newcomer types answers on a plain clone (git only: no DVC cache, no data).

The clone is a temporary commit of the working tree (tracked and untracked-not-ignored files), tagged
`sub-a`, then a second commit `sub-b` that moves one knob, one reported number, one headline score and
one training curve, as two submissions would. Each command runs in a test of its own and must exit 0
without DVC's "failed to load" warning; none runs a stage.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stages.paths import ROOT

VENV_BIN = ROOT / ".venv" / "bin"
CURVE = "metrics/train/attn/curves/fold_0/plots/metrics/loss.tsv"
WARNING = re.compile(r"failed to load|WARNING", re.I)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _ok(args: list[str], cwd: Path) -> str:
    proc = _run(args, cwd)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{out[-3000:]}"
    assert not WARNING.search(out), f"{' '.join(args)} warned:\n{out[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if not (VENV_BIN / "dvc").exists():
        pytest.skip("no .venv/bin/dvc: run bash setup.sh")
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if rel.startswith((".venv", ".venv-convert")) or not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    _ok(["git", "init", "-q"], src)
    _ok(["git", "add", "-A"], src)
    _ok(["git", "commit", "-qm", "submission a"], src)
    _ok(["git", "tag", "sub-a"], src)
    params = (src / "params.yaml").read_text()
    (src / "params.yaml").write_text(re.sub(r"(?m)^(blend:.*\n(?:[ #].*\n)*?  weight: )[0-9.]+", r"\g<1>0.11", params, count=1))
    reported = (src / "paper/reported.yaml").read_text()
    (src / "paper/reported.yaml").write_text(reported.replace('"24": 0.648', '"24": 0.649', 1))
    v6 = src / "metrics/headline/submissions/v6.json"
    v6.write_text(re.sub(r'"public": [0-9.]+', '"public": 0.5', v6.read_text()))
    curve = src / CURVE
    curve.write_text(curve.read_text() + f"{len(curve.read_text().splitlines()) - 1}\t0.01\n")
    _ok(["git", "commit", "-qam", "submission b"], src)
    _ok(["git", "tag", "sub-b"], src)
    dest = tmp_path_factory.mktemp("clone") / "repo"
    _ok(["git", "clone", "-q", str(src), str(dest)], src)
    return dest


def test_repro_dry_lists_what_would_run(clone, tmp_path):
    # Plain `--dry` hashes the deps of every stage it would run, which a clone lacks (DVC 3.67);
    # `--allow-missing` compares them with dvc.lock instead: it fails when dvc.lock is stale. Run on
    # sub-a, the commit as it is (sub-b moves a knob and a reported number that stages depend on).
    plain = tmp_path / "sub-a"
    _ok(["git", "clone", "-q", "--branch", "sub-a", str(clone), str(plain)], tmp_path)
    out = _ok(["dvc", "repro", "--dry", "--allow-missing"], plain)
    assert re.findall(r"Running stage '([^']+)'", out) == ["fingerprint"], out[-2000:]  # always changed, sub-second


def test_status_answers(clone):
    assert "paper" in _ok(["dvc", "status"], clone)


def test_dag_of_one_stage(clone):
    out = _ok(["dvc", "dag", "--mermaid", "paper"], clone)
    assert out.startswith("flowchart") and "paper" in out
    assert "paper" in _ok(["dvc", "dag", "paper"], clone)  # the ASCII drawing answers too


def test_params_diff_shows_a_knob_and_a_reported_number(clone):
    out = _ok(["dvc", "params", "diff", "sub-a", "sub-b"], clone)
    assert "blend.weight" in out and "0.11" in out
    assert "paper/reported.yaml" in out and "table1.knn5.24" in out
    _ok(["dvc", "params", "diff", "HEAD~1"], clone)


def test_metrics_show_fits_a_screen(clone):
    out = _ok(["dvc", "metrics", "show"], clone)
    assert "metrics/headline/submissions/v6.json" in out
    assert max(len(line) for line in out.splitlines()) <= 300


def test_metrics_diff_between_two_submissions(clone):
    out = _ok(["dvc", "metrics", "diff", "sub-a", "sub-b"], clone)
    rows = [line for line in out.splitlines() if "headline/submissions/v6.json" in line]
    assert len(rows) == 1 and "public" in rows[0] and "0.5" in rows[0]
    assert max(len(line) for line in out.splitlines()) <= 300


def test_plots_diff_between_two_submissions(clone, tmp_path):
    _ok(["dvc", "plots", "diff", "sub-a", "sub-b", "-o", str(tmp_path / "plots")], clone)
    html = (tmp_path / "plots/index.html").read_text()
    assert "attn_loss" in html and "sub-b" in html
