"""The protossm stage's TTA chosen on the OOF, on a tiny feature store: every candidate set is scored,
the best one (a tie: fewer shifts) is chosen, and the chosen shifts are the ones applied to test."""
import json

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.data import features as store
from birdclef_eos.scoring.oof import choose_shift_set
from stages import protossm
from tests.fakes.runtime import runtime

LABELS = ["sp0", "sp1", "sp2"]
FILES, TESTS, T = 8, 2, 12
PROTOSSM = {"inputs": ["embedding"], "tta": "oof", "tta_candidates": [[0.0], [-1.0, 0.0, 1.0]], "mix_logits": False,
            "d_model": 8, "d_state": 4, "d_conv": 2, "layers": 1, "attn_heads": 2, "n_sites": 4, "meta_dim": 4,
            "dropout": 0.0, "temperature": 5.0, "epochs": 2, "patience": 2, "batch_files": 4, "lr": 0.01,
            "weight_decay": 0.0, "pos_weight_cap": 25.0, "distill_weight": 0.0, "swa_start": 0.65, "seed": 0,
            "threads": 1, "focal_sequences": 0, "focal_secondary_weight": 1.0}


def params(**changes):
    return {"base": {"protossm": {**PROTOSSM, **changes}}, "train": {"n_folds": 2, "fold_salt": "folds-v1"},
            "runtime": runtime()}


def rows(split: str, shifts, rng) -> list[dict]:
    out = []
    for f in range(FILES if split == "labelled" else TESTS):
        stem = f"{split}_{f}"
        chosen = [";".join(sorted(rng.choice(LABELS, size=rng.integers(0, 3), replace=False))) for _ in range(T)]
        for c in range(T):
            for s in shifts:
                out.append({"source": "soundscape" if split == "labelled" else "test", "file_id": stem,
                            "start_s": 5.0 * c + s, "shift_s": s, "row_id": f"{stem}_{5 * (c + 1)}", "chunk": c,
                            "split": split, "primary_label": "", "labels": chosen[c] if split == "labelled" else "",
                            "secondary_labels": "", "site": f"S{f % 2}", "hour": 6})
    return out


def embed(windows: pd.DataFrame, noise: float, rng) -> np.ndarray:
    hot = np.array([[label in cell.split(";") for label in LABELS] for cell in windows["labels"]], dtype=np.float32)
    return (hot @ np.eye(3, 6, dtype=np.float32) * 2 + noise * rng.normal(size=(len(windows), 6))).astype(np.float32)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """data/features: labelled chunks at shift 0, test chunks at -1, 0, 1; data/features_labelled:
    the labelled chunks again at -1 and 1 with the same embedding as at shift 0 (so every candidate
    set has the same OOF: a tie)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    main = pd.DataFrame(rows("labelled", [0.0], rng) + rows("test", [-1.0, 0.0, 1.0], rng))
    emb = embed(main, 1.0, rng)
    store.save("data/features", main, {"embedding": emb}, {"blocks": []})
    labelled = main[main["split"] == "labelled"]
    moved = pd.concat([labelled.assign(shift_s=s, start_s=labelled["start_s"] + s) for s in (-1.0, 1.0)])
    store.save("data/features_labelled", moved.reset_index(drop=True),
               {"embedding": np.concatenate([emb[labelled.index]] * 2)}, {"blocks": []})
    index = tmp_path / "data/index"
    index.mkdir(parents=True)
    pd.DataFrame({"label_idx": range(3), "primary_label": LABELS}).to_csv(index / "species.csv", index=False)
    pd.DataFrame({"soundscape_id": sorted(set(main["file_id"])), "site": "S0"}).to_csv(index / "soundscapes.csv",
                                                                                      index=False)
    return tmp_path


def shifted_noise(workdir, noise: float):
    """Give the labelled chunks at -1 and 1 embeddings of their own: shift-0's plus fresh noise."""
    windows, arrays, meta = store.load("data/features_labelled", mmap=False)
    rng = np.random.default_rng(1)
    emb = arrays["embedding"] + noise * rng.normal(size=arrays["embedding"].shape).astype(np.float32)
    store.save("data/features_labelled", windows, {"embedding": emb}, meta)


def outputs(workdir) -> dict:
    metrics = json.loads((workdir / "build/metrics/protossm/metrics.json").read_text())
    return {"metrics": metrics, "test": (workdir / "predictions/chain/protossm/test.csv").read_bytes(),
            "oof": (workdir / "predictions/oof/protossm/oof.csv").read_bytes(),
            "config": json.loads((workdir / "models/chain/protossm/config.json").read_text())}


def test_a_tie_chooses_fewer_shifts_and_that_set_is_applied_to_test(workdir):
    protossm.run(params())
    chosen = outputs(workdir)
    scores = [c["oof_macro_auc"] for c in chosen["metrics"]["tta_choice"]["candidates"]]
    assert [c["shifts"] for c in chosen["metrics"]["tta_choice"]["candidates"]] == [[0.0], [-1.0, 0.0, 1.0]]
    assert scores[0] == scores[1]  # the shifted windows are copies of shift 0's
    assert chosen["metrics"]["tta"] == chosen["config"]["tta"] == [0.0]
    protossm.run(params(tta=[0.0]))
    fixed = outputs(workdir)
    assert fixed["test"] == chosen["test"] and fixed["oof"] == chosen["oof"]
    assert fixed["metrics"]["tta_choice"]["rule"] == "fixed by base.protossm.tta"
    protossm.run(params(tta=[-1.0, 0.0, 1.0]))
    three = outputs(workdir)
    assert three["test"] != chosen["test"]  # the test chunks differ between shifts: the comparison can fail


def test_the_best_oof_set_is_chosen_and_applied_to_test(workdir):
    shifted_noise(workdir, 0.8)
    protossm.run(params(tta_candidates=[[-1.0, 0.0, 1.0], [0.0], [0.0, 1.0]]))
    chosen = outputs(workdir)
    candidates = chosen["metrics"]["tta_choice"]["candidates"]
    scored = [(c["shifts"], c["oof_macro_auc"]) for c in candidates]
    assert len({s for _, s in scored}) == 3  # distinct scores: the choice is by score, not by the tie rule
    best = scored[choose_shift_set(scored)][0]
    assert best == max(scored, key=lambda c: c[1])[0]
    assert len(best) > 1  # here a set of more shifts wins on its score: the tie rule did not decide
    assert chosen["metrics"]["tta"] == chosen["config"]["tta"] == best
    assert chosen["metrics"]["oof_macro_auc"] == max(s for _, s in scored)
    listed = json.loads((workdir / "predictions/oof/protossm/candidates.json").read_text())
    assert [c["shifts"] for c in listed] == [c for c, _ in scored]  # each candidate's OOF, for the base stage
    files = {c["file"]: (workdir / "predictions/oof/protossm" / c["file"]).read_bytes() for c in listed}
    assert files[listed[[c["shifts"] for c in listed].index(best)]["file"]] == chosen["oof"]
    assert len(set(files.values())) == 3
    protossm.run(params(tta=best))
    assert outputs(workdir)["test"] == chosen["test"]
    other = next(c for c, _ in scored if c != best)
    protossm.run(params(tta=other))
    assert outputs(workdir)["test"] != chosen["test"]


def test_a_shift_without_labelled_windows_is_named(workdir):
    with pytest.raises(protossm.ProtoSSMStageError, match=r"data/features_labelled/windows.csv: no labelled chunks at "
                                                          r"shift 2.0 \(add it to extract.labelled_shifts\)"):
        protossm.run(params(tta_candidates=[[0.0], [0.0, 2.0]]))
