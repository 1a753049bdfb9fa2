"""The ceiling stage and the leaderboard's shake-up on a fake hidden set: curves, control partners, splits, sentences."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.io.files import read_yaml
from birdclef_eos.report.leaderboard_config import LeaderboardParams
from birdclef_eos.scoring.shakeup_config import ShakeupParams
from stages import ceiling, leaderboard

ROOT = Path(__file__).resolve().parents[2]

LABELS = ["a", "b", "c", "d", "e"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    files = [f"BC2026_Test_{i:04d}_S01_20250101_060000" for i in range(10)]
    ids = [f"{f}_{5 * (c + 1)}" for f in files for c in range(12)]
    y = (rng.random((len(ids), len(LABELS))) < 0.25).astype(int)
    (tmp_path / "data/hidden").mkdir(parents=True)
    (tmp_path / "data/index").mkdir(parents=True)
    pd.DataFrame(y, columns=LABELS).assign(row_id=ids)[["row_id", *LABELS]].to_csv(tmp_path / "data/hidden/solution.csv", index=False)
    pd.DataFrame({"filename": files, "board": ["public"] * 3 + ["private"] * 7}).to_csv(tmp_path / "data/hidden/boards.csv", index=False)
    pd.DataFrame({"primary_label": LABELS, "label_idx": range(5), "genus": ["G", "G", "H", "I", "I"],
                  "class_name": ["Aves"] * 5}).to_csv(tmp_path / "data/index/species.csv", index=False)
    for name, strength in (("base", 1.5), ("head", 0.6), ("other", 0.3), ("eos7", 1.6)):
        sub = pd.DataFrame(1 / (1 + np.exp(-(strength * y + rng.standard_normal(y.shape)))), columns=LABELS)
        sub.insert(0, "row_id", ids)
        (tmp_path / "submissions" / name).mkdir(parents=True)
        sub.to_csv(tmp_path / f"submissions/{name}/submission.csv", index=False)
    # the labelled OOF rows: the base's and its reference head's (attn) OOF as the base stage writes them
    oof_ids = [f"BC2026_Train_{i:04d}_S01_20250101_060000_{5 * (c + 1)}" for i in range(8) for c in range(6)]
    y_oof = (rng.random((len(oof_ids), len(LABELS))) < 0.3).astype(int)
    pd.DataFrame({"row_id": oof_ids, "soundscape_id": [r.rsplit("_", 1)[0] for r in oof_ids], "split": "labelled",
                  "labels": [";".join(label for label, v in zip(LABELS, row) if v) for row in y_oof]}
                 ).to_csv(tmp_path / "data/index/chunks.csv", index=False)
    (tmp_path / "predictions/oof/base").mkdir(parents=True)
    for name, strength in (("base", 1.5), ("reference", 0.8)):
        oof = pd.DataFrame(1 / (1 + np.exp(-(strength * y_oof + rng.standard_normal(y_oof.shape)))), columns=LABELS)
        oof.insert(0, "row_id", oof_ids)
        oof.to_csv(tmp_path / f"predictions/oof/base/{name}.csv", index=False)
    (tmp_path / "predictions/oof/base/parts.json").write_text(json.dumps(
        {"oof": {"base": "base.csv", "reference": "reference.csv"}, "reference": "attn"}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ceiling_params():
    return {"ceiling": {"base": "base", "partners": ["head", "other"], "weights": [0.0, 0.1, 0.3],
                        "control": {"like": "head", "strengths": [0.7, 0.99], "weight": 0.3, "tolerance": 0.01, "seed": 0},
                        "control_bases": {"head": "head", "strengths": [0.75, 0.95], "regime": 0.95, "seed": 0},
                        "bootstrap": 50, "confidence": 0.9, "seed": 0},
            "blend": {"space": "prob", "taxonomy": {"genus": 0.15, "class": 0.05}}}


def test_ceiling_writes_curves_controls_and_sentences(tree):
    result = ceiling.run(ceiling_params())
    saved = json.loads((tree / "build/metrics/ceiling/ceiling.json").read_text())
    assert saved["partners"]["head"]["public"]["weights"] == [0.0, 0.1, 0.3]
    assert saved["partners"]["head"]["public"]["gain"][0] == 0.0
    for strength in ("0.7", "0.99"):
        assert abs(saved["control"][strength]["achieved"] - float(strength)) <= 0.01
    # a near-perfect control at weight 0.3 lifts the base; the figure and the sentences exist
    assert saved["control"]["0.99"]["private"]["gain"] > saved["control"]["0.7"]["private"]["gain"]
    assert (tree / "build/figures/plateau.png").stat().st_size > 10_000
    assert any(s.startswith("Partner head:") for s in result.sentences)
    assert not (tree / "submissions/control").exists()  # a control is never a submission
    # control bases: calibrated like the base, the head blended in at control.weight (0.3) in both spaces
    cb = saved["control_bases"]
    assert cb["weight"] == 0.3  # control.weight: the stage reads no blend.weight
    assert set(cb["strengths"]) == {"0.75", "0.95"} and cb["regime"]["strength"] == 0.95
    for e in cb["strengths"].values():
        assert abs(e["achieved"] - e["target"]) <= 0.01 and {"prob", "rank"} <= set(e)
        assert e["prob"]["private"]["low"] <= e["prob"]["private"]["difference"] <= e["prob"]["private"]["high"]
    assert (tree / "build/figures/plateau_strength.png").stat().st_size > 10_000
    oof = saved["space_on_oof"]
    assert oof["head_model"] == "attn" and oof["rank"]["effective_share"]["head"]["weight"] == 0.3
    assert any(s.startswith("Control bases") for s in result.sentences)


def test_space_oof_uses_the_space_the_oof_picks_at_the_analysis_weight(tree):
    params = ceiling_params()
    params["blend"]["space"] = "oof"
    ceiling.run(params)
    saved = json.loads((tree / "build/metrics/ceiling/ceiling.json").read_text())
    oof = saved["space_on_oof"]
    assert oof["weight"] == 0.3 and oof["chosen"] in ("prob", "rank")
    assert saved["space"] == oof["chosen"] == saved["control_bases"]["space"]


def test_without_a_base_oof_the_comparison_is_skipped(tree):
    (tree / "predictions/oof/base/parts.json").write_text(json.dumps({"oof": None, "why": "base.source: file"}))
    result = ceiling.run(ceiling_params())
    assert json.loads((tree / "build/metrics/ceiling/ceiling.json").read_text())["space_on_oof"] is None
    assert not any(s.startswith("On the OOF") for s in result.sentences)


def test_shakeup_over_random_splits(tree):
    params = {"shakeup": {"rows": ["base", "head", "eos7"], "splits": 100, "public_share": 0.3, "seed": 0},
              "blends": {"eos7": {}}}
    s, said, figure = leaderboard.shake_up(ShakeupParams.model_validate(params["shakeup"]), params["blends"])
    assert s["blends"] == ["eos7"] and set(s["submissions"]) == {"base", "head", "eos7"}
    for entry in s["submissions"].values():
        assert entry["low"] <= entry["mean"] <= entry["high"] and 0 <= entry["p_gain"] <= 1
    assert len(s["swaps"]) == 3 and all(0 <= t["p_swap"] <= 1 for t in s["swaps"])
    assert "eos7 (blend)" in said[2] and "(lost)" in said[2]
    assert figure.endswith("shakeup.png") and (tree / "build/figures/shakeup.png").stat().st_size > 10_000
    assert leaderboard.shake_up(ShakeupParams.model_validate(params["shakeup"]), params["blends"])[0] == s


def test_ceiling_with_one_file_on_a_board(tree):
    """The smoke set has a single public file: no bands there, the figure and sentences still come."""
    boards = tree / "data/hidden/boards.csv"
    frame = pd.read_csv(boards)
    frame["board"] = ["public"] + ["private"] * 9
    frame.to_csv(boards, index=False)
    result = ceiling.run(ceiling_params())
    assert result.ceiling["partners"]["head"]["public"]["low"] == [None, None, None]
    assert any("no interval" in s for s in result.sentences)
    assert (tree / "build/figures/plateau.png").stat().st_size > 10_000


def test_table3_compares_the_blend_with_each_part_and_the_smoothed_base(tree):
    shipped = read_yaml(ROOT / "params.yaml")["leaderboard"]  # the stage is handed its section typed
    cfg = LeaderboardParams.model_validate({**shipped, "bootstrap": {"draws": 50, "seed": 0, "confidence": 0.95}})
    entry = {"weights": {"base": 0.93, "head": 0.07}, "taxonomy": {"genus": 0.15, "class": 0.05}}
    got = leaderboard.against_parts(cfg, "eos7", entry)
    assert list(got) == ["base", "head", "smoothed_base"] and "taxonomy" in got["smoothed_base"]["label"]
    for row in got.values():
        for board in ("public", "private"):
            d = row[board]
            assert d["low"] <= d["difference"] <= d["high"]
    assert leaderboard.against_parts(cfg, "eos7", dict(entry, taxonomy=None)).keys() == {"base", "head"}


def test_ceiling_with_a_board_without_a_score(tree):
    """A small real folder's board can have no label column with both classes: macro-AUC does not exist
    there. The stage writes that board's entries as undefined with the reason, reads the other board,
    and still draws both figures; the claim that reads the private regime says why it has no verdict."""
    from birdclef_eos.report.paper import Rule, evaluate
    solution = pd.read_csv(tree / "data/hidden/solution.csv")
    private = solution["row_id"].str.rsplit("_", n=1).str[0].isin(
        pd.read_csv(tree / "data/hidden/boards.csv").query("board == 'private'")["filename"])
    solution.loc[private, LABELS] = 0  # every private row negative in every column
    solution.to_csv(tree / "data/hidden/solution.csv", index=False)
    result = ceiling.run(ceiling_params())
    out = result.ceiling
    assert out["partners"]["head"]["private"]["undefined"].startswith("undefined on the private board")
    assert out["partners"]["head"]["public"]["score"][0] is not None
    assert out["control"]["0.7"]["private"]["difference"] is None
    regime = out["control_bases"]["regime"]["private"]
    assert regime["difference"] is None and "no label column" in regime["undefined"]
    assert any("undefined on the private board" in s for s in result.sentences)
    for name in ("plateau.png", "plateau_strength.png"):
        assert (tree / "build/figures" / name).stat().st_size > 10_000
    json.dumps(out, allow_nan=False)  # JSON-compliant: no NaN where a score is undefined
    claim = {"id": "plateau_at_paper_regime", "section": "7", "part": "results", "claim": "c", "kind": "interval",
             "direction": "equivalent", "source": {"file": "ceiling.json", "key": "control_bases.regime.private"}}
    v = evaluate(claim, lambda f: out, {}, Rule(margin=0.002, confidence=0.9))
    assert v.verdict == "undecided" and v.detail.startswith("undefined on the private board")


def test_ceiling_when_no_row_has_a_score(tree):
    """No label column with both classes over the whole hidden set: no control partner can be tuned;
    the stage says so and still writes its json and figures."""
    solution = pd.read_csv(tree / "data/hidden/solution.csv")
    solution[LABELS] = 0
    solution.to_csv(tree / "data/hidden/solution.csv", index=False)
    result = ceiling.run(ceiling_params())
    assert result.ceiling["control"] == {} and "whole hidden" in result.ceiling["control_bases"]["undefined"]
    assert any(s.startswith("Control bases: undefined") for s in result.sentences)
    assert "The plateau is not read: no board has a score." in result.sentences
    assert (tree / "build/figures/plateau_strength.png").stat().st_size > 5_000
