"""The paper stage on a fake metrics set, in a throwaway folder: it publishes build/ and paper.md's
numbers follow the published metrics; absent sources read "not built yet"."""
import hashlib
import json

import yaml

from stages import paper

PARAMS = {"paper": {"verdict": {"confidence": 0.95, "bootstrap": 50, "seed": 0, "margin": 0.01, "tolerance": 0.1,
                                "without_interval": "point"}, "digits": 3},
          "dataset": {"source": "synthetic", "scale": "smoke"}, "backbone": {"name": "perch_tiny"},
          "submissions": {"v6": {"model": "attn", "tta": [0.0], "postprocess": True}}}
CLAIMS = {"sections": [{"id": "head", "number": "4", "title": "Head",
                        "notes": [{"text": "OOF", "file": "train/attn/metrics.json", "key": "oof_macro_auc"}],
                        "tables": ["table2.md", "table3.md"], "figures": ["pipelines.png"]}],
          "claims": [{"id": "pseudo", "section": "7.1", "part": "head", "claim": "pseudo inflates OOF",
                      "kind": "interval", "direction": "greater", "reported": ["pseudo.v4.oof"],
                      "source": {"file": "pseudo_table/pseudo.json", "key": "rows.v4.vs_reference.oof"}},
                     {"id": "blend", "section": "5", "part": "head", "claim": "blend beats v6", "kind": "paired",
                      "a": "eos7", "b": "v6", "board": "public", "direction": "greater"}]}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if path.suffix == ".json" else obj if isinstance(obj, str) else yaml.safe_dump(obj))
    if path.name == "claims.yaml":  # the stage refuses claims whose sha256 is not the recorded one
        path.with_name("claims.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "  claims.yaml\n")


def test_paper_follows_the_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "paper/claims.yaml", CLAIMS)
    write(tmp_path / "paper/reported.yaml", {"pseudo": {"v4": {"oof": 0.8998}}})
    write(tmp_path / "build/tables/table2.md", "Table 2: here\n")
    write(tmp_path / "build/figures/pipelines.png", "png")
    write(tmp_path / "build/metrics/train/attn/metrics.json", {"oof_macro_auc": 0.8123})
    write(tmp_path / "build/metrics/pseudo_table/pseudo.json",
          {"rows": {"v4": {"vs_reference": {"oof": {"difference": 0.02, "low": 0.01, "high": 0.03}}}}})
    first = paper.run(PARAMS)
    assert (tmp_path / "metrics/train/attn/metrics.json").exists() and "metrics/headline/models/attn.json" in first.published.files
    md = (tmp_path / "paper/paper.md").read_text()
    assert md == first.markdown and "0.812" in md and "holds here" in md and "0.900" in md
    assert "Table 2: here" in md and "`table3.md`: not built yet" in md and "../figures/pipelines.png" in md
    assert first.counts == {"holds here": 1, "cannot be tested here": 1}  # no hidden labels in this folder
    verdicts = json.loads((tmp_path / "paper/verdicts.json").read_text())
    assert [c["verdict"] for c in verdicts["claims"]] == ["holds here", "cannot be tested here"]

    write(tmp_path / "build/metrics/train/attn/metrics.json", {"oof_macro_auc": 0.7456})
    write(tmp_path / "build/metrics/pseudo_table/pseudo.json",
          {"rows": {"v4": {"vs_reference": {"oof": {"difference": -0.02, "low": -0.03, "high": -0.01}}}}})
    second = paper.run(PARAMS)
    assert "0.746" in second.markdown and "0.812" not in second.markdown
    assert second.verdicts[0]["verdict"] == "does not hold here"


def test_a_paired_claim_on_a_board_without_a_score_is_undecided_with_the_reason(tmp_path, monkeypatch):
    """A small folder's board where no label column has both classes: the paired bootstrap has nothing to
    score; the claim is undecided and its detail says why (before, the paper stage stopped)."""
    import pandas as pd

    from birdclef_eos.report.paper import Rule, evaluate
    monkeypatch.chdir(tmp_path)
    files = ["BC2026_Test_0001_S01_20250101_060000", "BC2026_Test_0002_S01_20250101_060000"]
    ids = [f"{f}_{5 * (c + 1)}" for f in files for c in range(4)]
    (tmp_path / "data/hidden").mkdir(parents=True)
    pd.DataFrame({"row_id": ids, "a": [1] * 8, "b": [0] * 8}).to_csv(tmp_path / "data/hidden/solution.csv", index=False)
    pd.DataFrame({"filename": files, "board": ["public", "private"]}).to_csv(tmp_path / "data/hidden/boards.csv", index=False)
    for name in ("eos7", "v6"):
        (tmp_path / "submissions" / name).mkdir(parents=True)
        pd.DataFrame({"row_id": ids, "a": 0.5, "b": 0.5}).to_csv(tmp_path / f"submissions/{name}/submission.csv", index=False)
    rule = Rule(bootstrap=20)
    obj = paper.make_pairs(rule)("eos7", "v6", "public")
    assert obj["difference"] is None and obj["undefined"].startswith("undefined on the public board")
    v = evaluate(CLAIMS["claims"][1], lambda f: {}, {}, rule, paper.make_pairs(rule))
    assert v.verdict == "undecided" and "undefined on the public board: no label column" in v.detail
