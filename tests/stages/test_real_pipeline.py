"""Real-data mode end to end at smoke size: `dvc repro` to the leaderboard, the ablation, the
pseudo table and the plateau on a small folder in the BirdCLEF 2026 layout (tests/fakes/competition.py: 6 species,
10 labelled and 2 unlabelled 20-s soundscapes, an empty test_soundscapes/), backbone perch_tiny.

Two folders: as generated, and a user's subset with the unlabelled soundscapes deleted (another
year's folder may have none): `pseudo` then writes an empty set with the reason, the students drop
their pseudo share, and the pseudo table says so. Each run takes about 8 minutes on two shared cores,
so both run only with BIRDCLEF_REAL_PIPELINE_ALL=1 (marker `real_pipeline_extra`).

A local board of 2 files x 4 chunks may leave no label both present and absent: that board's
scores are then null with the reason, and the tables say "undefined" (never a crash).
"""
from __future__ import annotations

import copy
import json
import os

import pandas as pd
import pytest
import yaml

from tests.fakes.competition import small_competition
from tests.fakes.repo_copy import REPO, VENV_BIN, deep_update, make_repo, sh

SMOKE = yaml.safe_load((REPO / "tests" / "stages" / "smoke_params.yaml").read_text())
TARGETS = ["leaderboard", "ablation", "pseudo_table", "ceiling"]
needs_venv = pytest.mark.skipif(not (VENV_BIN / "dvc").exists(), reason="needs the project venv (setup.sh)")
opt_in = pytest.mark.skipif(os.environ.get("BIRDCLEF_REAL_PIPELINE_ALL") != "1",
                            reason="an 8-minute pipeline run: set BIRDCLEF_REAL_PIPELINE_ALL=1")


def real_repo(tmp_path, unlabelled: bool):
    comp = small_competition(tmp_path, cfg={"labelled": 10})
    if not unlabelled:
        labelled = set(pd.read_csv(comp / "train_soundscapes_labels.csv")["filename"])
        dropped = [f for f in (comp / "train_soundscapes").iterdir() if f.name not in labelled]
        assert dropped
        for f in dropped:
            f.unlink()
    # 10 labelled files, 4 held out (a board of a file or two leaves no label both present and
    # absent); the residual head reads blocks 24, 25 (perch_tiny's probe pick has unequal widths)
    overrides = deep_update(copy.deepcopy(SMOKE), {
        "dataset": {"source": "birdclef", "root": str(comp), "holdout": {"share": 0.4, "group": "file", "seed": 0}},
        "train": {"variants": {"residual": {"blocks": [24, 25]}}}})
    return make_repo(tmp_path / "repo", overrides)


def check_run(repo, unlabelled: bool):
    sh([str(VENV_BIN / "dvc"), "repro", *TARGETS], repo, timeout=1500)
    board = json.loads((repo / "build/metrics/leaderboard/leaderboard.json").read_text())
    assert board["mode"] == "local"
    for name in ("v6", "v4"):
        scores = board["submissions"][name]
        for part in ("public", "private"):
            if scores[part] is None:
                assert "no label column has both positives and negatives" in scores["undefined"][part]
            else:
                assert 0.0 <= scores[part] <= 1.0, (name, scores)
    undefined = [b for b in ("public", "private") if board["submissions"]["v6"][b] is None]
    table3 = (repo / "build/tables/table3.md").read_text()
    assert ("undefined" in table3) == bool(undefined)
    plateau = json.loads((repo / "build/metrics/ceiling/ceiling.json").read_text())
    for b in ("public", "private"):
        entry = plateau["partners"]["v6"][b]
        assert ("undefined" in entry) == (b in undefined), (b, entry)
    ablation = json.loads((repo / "build/metrics/ablation/ablation.json").read_text())
    for block in ablation["soundscape_probe"]["blocks"].values():
        assert block["macro_auc"] is not None or block["undefined"]
    summary = json.loads((repo / "build/metrics/pseudo/summary.json").read_text())
    table = (repo / "build/tables/pseudo.md").read_text()
    if unlabelled:
        assert summary["chunks"] > 0 and "skipped" not in summary
    else:
        assert summary["chunks"] == 0 and "no unlabelled soundscape" in summary["skipped"]
        assert "No pseudo labels here" in table


@needs_venv
@opt_in
@pytest.mark.real_pipeline_extra
def test_real_pipeline_on_a_small_folder(tmp_path):
    check_run(real_repo(tmp_path, unlabelled=True), unlabelled=True)


@needs_venv
@opt_in
@pytest.mark.real_pipeline_extra
def test_real_pipeline_on_a_folder_without_unlabelled_soundscapes(tmp_path):
    check_run(real_repo(tmp_path, unlabelled=False), unlabelled=False)
