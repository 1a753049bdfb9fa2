"""The whole pipeline, `dvc repro` from dataset to leaderboard, on the smoke-size configuration
(tests/smoke_params.yaml) in a throwaway copy of the repository; then a post-processing change
through `dvc exp run -S` must re-run only prediction and the leaderboard, and a block-choice
change only training and what follows it."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.repo_copy import REPO, VENV_BIN, make_repo, sh

SMOKE = yaml.safe_load((REPO / "tests" / "smoke_params.yaml").read_text())


@pytest.mark.skipif(not (VENV_BIN / "dvc").exists(), reason="needs the project venv (setup.sh)")
def test_full_pipeline_smoke(tmp_path):
    repo = make_repo(tmp_path / "repo", SMOKE)
    dvc = str(VENV_BIN / "dvc")
    sh([dvc, "repro"], repo, timeout=1500)

    board = json.loads((repo / "metrics" / "leaderboard" / "leaderboard.json").read_text())
    assert board["mode"] == "local"
    for name in ("v1", "v2", "v5", "v6", "v7"):
        scores = board["submissions"][name]
        assert 0.0 <= scores["public"] <= 1.0 and 0.0 <= scores["private"] <= 1.0, (name, scores)
    for table in ("table1.md", "table2.md"):
        assert (repo / "paper" / "tables" / table).stat().st_size > 0
    for figure in ("architecture.png", "architecture_selected.png", "probe.png", "leaderboard.png"):
        assert (repo / "figures" / figure).stat().st_size > 0
    assert "up to date" in sh([dvc, "status"], repo), "a second look finds stale stages"

    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "smoke baseline", "--allow-empty"], repo)
    out = sh([dvc, "exp", "run", "-S", "postprocess.prior_alpha=2.0"], repo, timeout=900)
    for cached in ("dataset", "checkpoint", "surgery", "probe", "extract", "train@attn"):
        assert f"Running stage '{cached}'" not in out, f"{cached} re-ran after a post-processing change"
    assert "Running stage 'predict@v6'" in out
    assert "Running stage 'leaderboard'" in out
    diff = sh([dvc, "metrics", "diff", "--json"], repo)
    assert "leaderboard" in diff

    # the head's block choice is train's: a block-choice experiment re-runs no extraction
    out = sh([dvc, "exp", "run", "-S", "train.blocks=[20,24,25]"], repo, timeout=900)
    for cached in ("dataset", "checkpoint", "surgery", "probe", "extract"):
        assert f"Running stage '{cached}'" not in out, f"{cached} re-ran after a block-choice change"
    assert "Running stage 'train@attn'" in out and "Running stage 'leaderboard'" in out
