"""The whole pipeline on the smoke-size configuration (tests/stages/smoke_params.yaml) in a throwaway
copy of the repository, used as a researcher would:

1. `dvc repro` from dataset to paper; the small results land in git-tracked folders.
2. Commit and tag the run as a submission; `dvc exp run -S blend.weight=0.08` re-runs only the blends
   and what reads them; a post-processing change would re-run `submit` and the base's post-processing,
   no prediction; with a block-choice change too, training and what follows, no extraction (`dvc repro --dry`).
3. Retrain the sidecar head (`dvc exp run -S sidecar.head.optim.lr=0.003`), commit that second run
   and tag it; `dvc push` after each.
4. `git checkout <first tag> && dvc checkout` restores the first run's checkpoint and submission
   bytes, also after deleting the DVC cache and pulling from the remote.
5. A fresh clone with no DVC cache runs `dvc metrics diff <tag> <tag>` and sees the changed scores.
"""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from birdclef_eos.io.files import sha256_file
from tests.fakes.repo_copy import REPO, VENV_BIN, make_repo, sh

SMOKE = yaml.safe_load((REPO / "tests" / "stages" / "smoke_params.yaml").read_text())
SMOKE_ABLATION = yaml.safe_load((REPO / "params.yaml").read_text())["ablation"]["variants"]
KEPT = ("models/heads/sidecar/fold_0.pt", "submissions/eos7/submission.csv")


@pytest.mark.skipif(not (VENV_BIN / "dvc").exists(), reason="needs the project venv (setup.sh)")
def test_full_pipeline_smoke(tmp_path):
    repo = make_repo(tmp_path / "repo", SMOKE)
    dvc = str(VENV_BIN / "dvc")
    sh([dvc, "remote", "add", "-d", "-f", "--local", "storage", str(tmp_path / "remote")], repo)
    sh([dvc, "repro"], repo, timeout=1500)

    board = json.loads((repo / "metrics" / "leaderboard" / "leaderboard.json").read_text())
    assert board["mode"] == "local"
    for name in ("v1", "v2", "v5", "v6", "v7"):
        scores = board["submissions"][name]
        assert 0.0 <= scores["public"] <= 1.0 and 0.0 <= scores["private"] <= 1.0, (name, scores)
    # pseudo-labelling: the teacher's labels, both students, v4 and v4_residual, the table
    summary = json.loads((repo / "metrics" / "pseudo" / "summary.json").read_text())
    assert summary["chunks"] > 0 and summary["teacher"] == "attn"
    for name in ("v4", "v4_residual"):
        assert 0.0 <= board["submissions"][name]["public"] <= 1.0, name
    pseudo = json.loads((repo / "metrics" / "pseudo_table" / "pseudo.json").read_text())
    assert set(pseudo["rows"]) == {"v4", "v4_residual", "v4_fold"} and pseudo["mode"] == "ensemble"
    assert pseudo["rows"]["v4_fold"]["mode"] == "fold"  # both teachers in one run
    assert set(pseudo["rows"]["v4"]["vs_reference"]) == {"oof", "public", "private"}
    # the second half: the base, the blends, Tables 3-4, the sweep, plateau, shake-up, paper
    for name in ("base", "eos7", "eos8", "eos9", "eos10", "eos11", "eos12", "eos13", "vit196", "vit224"):
        assert 0.0 <= board["submissions"][name]["private"] <= 1.0, name
    base = json.loads((repo / "metrics" / "base" / "metrics.json").read_text())
    assert base["oof_macro_auc"] is not None and base["reference"] == "attn"
    assert json.loads((repo / "metrics" / "blend" / "blend.json").read_text())["blends"]["eos7"]["weights"]["v6"] == 0.07
    assert "## " in (repo / "paper" / "paper.md").read_text()
    table4 = (repo / "paper" / "tables" / "table4.md").read_text()
    for row in ("eos7", "eos8", "eos9", "eos10", "eos11", "eos12", "eos13", "v4", "v7"):  # Table 4's nine rows
        assert f"| {row} | " in table4, row
    for figure in ("plateau.png", "plateau_strength.png", "shakeup.png", "v7_sweep.png", "trajectories.png",
                   "pipelines.png"):
        assert (repo / "figures" / figure).stat().st_size > 0, figure
    for table in ("table1.md", "table2.md", "table3.md", "table4.md", "ablation.md", "pseudo.md", "v7_sweep.md"):
        assert (repo / "paper" / "tables" / table).stat().st_size > 0
    # the ablation: each variant against the probe's choice, on OOF and both boards
    ablation = json.loads((repo / "metrics" / "ablation" / "ablation.json").read_text())
    assert set(ablation["variants"]) == set(SMOKE_ABLATION)
    for v in ablation["variants"].values():
        assert set(v["comparison"]) == {"oof", "public", "private"}
    assert ablation["variants"]["abl_embedding"]["blocks"] == ["embedding"]
    assert "Spearman rho" in (repo / "paper" / "tables" / "ablation.md").read_text()
    assert "abl_last3" not in (repo / "paper" / "tables" / "table2.md").read_text()
    for figure in ("architecture.png", "architecture_selected.png", "probe.png", "leaderboard.png"):
        assert (repo / "figures" / figure).stat().st_size > 0
    stale = json.loads(sh([dvc, "status", "--json"], repo))
    assert stale in ({}, {"fingerprint": ["always changed"]}), f"a second look finds stale stages: {stale}"
    status = sh(["git", "status", "--porcelain", "metrics", "paper/tables", "figures"], repo)
    assert "metrics/" in status and "figures/" in status, "the published results are not visible to git"

    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "submission 1"], repo)
    sh(["git", "tag", "sub-1"], repo)
    sh([dvc, "push"], repo)  # every submission's artifacts to the remote
    first = {f: sha256_file(repo / f) for f in KEPT}

    # the blend's weight: the blends and what reads them re-run, nothing upstream
    out = sh([dvc, "exp", "run", "-S", "blend.weight=0.08"], repo, timeout=900)
    for cached in ("extract", "train@attn", "protossm", "sed", "base", "vit@224", "predict@v4", "submit", "spectrogram",
                   "figures",        # Figure 3, the one that shows the weight, is the blend stage's
                   "model_folder",   # the kernels carry the shared blend section, the model folder does not
                   "ceiling"):       # its control bases' head weighs ceiling.control.weight
        assert f"Running stage '{cached}'" not in out, f"{cached} re-ran after a blend.weight change"
    for ran in ("blend", "leaderboard", "paper", "bundle"):
        assert f"Running stage '{ran}'" in out, f"{ran} did not re-run after a blend.weight change"
    assert json.loads((repo / "metrics" / "blend" / "blend.json").read_text())["blends"]["eos7"]["weights"]["v6"] == 0.08

    # a post-processing change re-runs arithmetic only: `submit` (every submission's post-processing) and
    # the base chain's post-processing, not one head's inference nor the chain's models; with a
    # block-choice change too, training and what follows re-run, no extraction. Checked with `dvc repro
    # --dry` (running it costs a third of this test; which stages it would run is what this part checks)
    edited = yaml.safe_load((repo / "params.yaml").read_text())
    saved = (repo / "params.yaml").read_text()
    edited["postprocess"]["prior_alpha"] = 2.0
    (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    out = sh([dvc, "repro", "--dry"], repo)
    for cached in ("extract", "train@attn", "protossm", "sed", "spectrogram", "vit@224", "sidecar",
                   "model_folder",   # the kernels carry the post-processing knobs, the model folder does not
                   *(f"predict@{name}" for name in edited["submissions"])):
        assert f"Running stage '{cached}'" not in out, f"{cached} would re-run after a post-processing change"
    # (not `leaderboard`: it reads the submissions, whose new bytes --dry cannot foresee; the
    # blend.weight run above shows it re-running when its inputs change)
    for ran in ("submit", "base", "blend"):
        assert f"Running stage '{ran}'" in out, f"{ran} would not re-run after a post-processing change"
    edited["train"]["blocks"] = [20, 24, 25]
    (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    out = sh([dvc, "repro", "--dry"], repo)
    (repo / "params.yaml").write_text(saved)
    for cached in ("dataset", "checkpoint", "surgery", "probe", "extract", "spectrogram", "protossm", "sed",
                   "vit@224", "sidecar"):
        assert f"Running stage '{cached}'" not in out, f"{cached} would re-run after a post-processing and block-choice change"
    # (not `predict@v6`: since it reads no post-processing knob, it re-runs on the retrained head's
    # new bytes, which --dry cannot foresee)
    for ran in ("train@attn", "submit", "base"):
        assert f"Running stage '{ran}'" in out, f"{ran} would not re-run"

    # a second submission that retrains a head (the sidecar's: the cheapest fold training here)
    out = sh([dvc, "exp", "run", "-S", "sidecar.head.optim.lr=0.003"], repo, timeout=900)
    for cached in ("extract", "train@attn", "predict@v6", "submit", "base"):
        assert f"Running stage '{cached}'" not in out, f"{cached} re-ran after a sidecar training change"
    for ran in ("sidecar", "blend", "leaderboard"):
        assert f"Running stage '{ran}'" in out, f"{ran} did not re-run after a sidecar training change"
    assert "metrics/headline/models/sidecar.json" in sh([dvc, "metrics", "diff", "--json"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "submission 2: blend weight 0.08, the sidecar head at learning rate 0.003"], repo)
    sh(["git", "tag", "sub-2"], repo)
    second = {f: sha256_file(repo / f) for f in KEPT}
    assert second != first
    sh([dvc, "push"], repo)

    # no re-run can overwrite what an earlier submission used: both versions come back
    sh(["git", "checkout", "-q", "sub-1"], repo)
    sh([dvc, "checkout"], repo)
    assert {f: sha256_file(repo / f) for f in KEPT} == first
    shutil.rmtree(repo / ".dvc" / "cache")
    sh([dvc, "pull"], repo)
    assert {f: sha256_file(repo / f) for f in KEPT} == first
    sh(["git", "checkout", "-q", "sub-2"], repo)
    sh([dvc, "pull"], repo)  # the cache now holds only sub-1's files: pull checks sub-2's out
    assert {f: sha256_file(repo / f) for f in KEPT} == second

    # a fresh clone without any DVC cache compares the two submissions from git alone
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "cache").exists()
    diff = json.loads(sh([dvc, "metrics", "diff", "sub-1", "sub-2", "--json"], clone))
    assert "metrics/headline/models/sidecar.json" in diff, diff  # the retrained sidecar's OOF
    detail = json.loads(sh([dvc, "metrics", "diff", "sub-1", "sub-2", "--json", "--targets",
                            "metrics/blend/blend.json"], clone))  # a detail file, by path
    weight = detail["metrics/blend/blend.json"]["blends.eos7.weights.v6"]
    assert (weight["old"], weight["new"]) == (0.07, 0.08), weight
    params = json.loads(sh([dvc, "params", "diff", "sub-1", "sub-2", "--json"], clone))
    assert {"blend.weight", "sidecar.head.optim.lr"} <= set(params["params.yaml"]), params
