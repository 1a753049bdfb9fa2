"""A new blend is a params.yaml edit: in a copy of the repository's dvc.yaml and params.yaml, one
throwaway `blends:` entry, then `python -m stages.layout --write` adds exactly its out and its new
part to dvc.yaml's blend stage; the blend stage builds it and the leaderboard scores it (on a tiny
fake tree, the stages' own code with the copy's params.yaml, so it takes seconds)."""
import difflib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from stages import blend, layout, leaderboard
from stages.params import stage_params
from stages.paths import ROOT

from tests.fakes.predict_fakes import LABELS, write_base_oof, write_hidden, write_index

# DVC's own trie lookups warn on every out (pygtrie's _NoneStep.value); not this project's code
pytestmark = pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")

NEW = "eos_try"
ENTRY = {"parts": {"eos7": "rest", "v5": 0.1}, "taxonomy": True}  # an earlier blend and a submission no blend reads yet


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """The copy: dvc.yaml and params.yaml, the new entry added to params.yaml alone."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    rt = layout.yaml_rt()
    params = rt.load((repo / "params.yaml").read_text())
    params["blends"][NEW] = ENTRY
    params["leaderboard"]["bootstrap"]["draws"] = 50  # the copy's knobs, for speed: the scores do not depend on them
    params["shakeup"]["splits"] = 50
    with open(repo / "params.yaml", "w") as f:
        rt.dump(params, f)
    return repo


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """The stages' inputs: a tiny index and hidden set, every part and scored submission random."""
    work = tmp_path / "work"
    work.mkdir()
    rng = np.random.default_rng(0)
    write_index(work, rng)
    write_hidden(work, rng)
    write_base_oof(work)  # blend.space: oof chooses on it
    (work / "paper").mkdir()
    shutil.copy(ROOT / "paper/reported.yaml", work / "paper/reported.yaml")
    (work / "leaderboard").mkdir()
    (work / "leaderboard/kaggle.yaml").write_text("[]\n")
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    sample = pd.read_csv(work / "data/hidden/sample_submission.csv")
    for name in [*defaults["submissions"], *defaults["leaderboard"]["others"]]:
        sub = sample.copy()
        sub[LABELS] = rng.random((len(sub), len(LABELS)))
        (work / "submissions" / name).mkdir(parents=True)
        sub.to_csv(work / f"submissions/{name}/submission.csv", index=False)
    head = work / "build/metrics/train/attn"  # Figure 3's standalone head (v6's model)
    head.mkdir(parents=True)
    (head / "metrics.json").write_text(json.dumps({"head": "attention", "blocks": [12, 13, 14], "folds": [{}] * 5}))
    monkeypatch.chdir(work)
    return work


def dvc_order(repo):
    """DVC itself reads the written copy: the blend stage writes the new submission, after submit
    (which writes its new part v5) and before the leaderboard (which reads every submission)."""
    from dvc.repo import Repo

    Repo.init(str(repo), no_scm=True)
    graph = Repo(str(repo)).index.graph  # what `dvc repro` runs: refuses overlapping outs and cycles
    by_name = {s.name: s for s in graph.nodes}
    assert f"submissions/{NEW}" in [str(o) for o in by_name["blend"].outs]
    assert graph.has_edge(by_name["blend"], by_name["submit"])  # networkx edges point at the dependency
    assert graph.has_edge(by_name["leaderboard"], by_name["blend"])


def test_a_new_blend_is_a_params_edit_then_built_and_scored(repo, tree):
    before = (repo / "dvc.yaml").read_text()
    assert layout.main(["--check", "--root", str(repo)]) == 1  # dvc.yaml is stale until the command runs
    assert layout.main(["--write", "--root", str(repo)]) == 0
    after = (repo / "dvc.yaml").read_text()
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["+      - submissions/v5", f"+      - submissions/{NEW}"]
    dvc_order(repo)

    params = stage_params("blend", path=repo / "params.yaml")  # validated as every stage validates it
    built = blend.run(params)
    assert list(built.blends)[-1] == NEW and built.blends[NEW]["weights"] == pytest.approx({"eos7": 0.9, "v5": 0.1})
    manifest = json.loads((tree / f"submissions/{NEW}/manifest.json").read_text())
    assert manifest["parts"]["eos7"] == built.blends["eos7"]["submission_sha256"]

    scored = leaderboard.run(stage_params("leaderboard", path=repo / "params.yaml"))
    board = json.loads((tree / "build/metrics/leaderboard/leaderboard.json").read_text())["submissions"]
    assert set(board) >= {NEW, "eos7", "v5"} and board == scored.leaderboard["submissions"]
    for key in ("public", "private", "public_rank", "private_rank"):
        assert isinstance(board[NEW][key], (int, float)) and board[NEW][key] >= 0
