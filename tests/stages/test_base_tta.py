"""The base stage reads the head's OOF at the head's submission shifts (`base.reference_tta`): each
labelled chunk by the fold model that did not see its file, the shifts averaged, and only from fold
models that re-predict the head's own shift-0 OOF."""
import numpy as np
import pandas as pd
import pytest
import torch

from birdclef_eos.data import features as store
from birdclef_eos.heads import models as heads
from stages import base

LABELS = ["sp0", "sp1"]
CONFIG = {"type": "attn", "channels": [4, 4], "n_classes": 2, "d": 8, "heads": 2, "ffn": 8, "dropout": 0.0}
TOKENS = ["block_00", "block_01"]


def chunk_rows(shift: float) -> pd.DataFrame:
    return pd.DataFrame([{"source": "soundscape", "file_id": f"F{f}", "start_s": 5.0 * c + shift, "shift_s": shift,
                          "row_id": f"F{f}_{5 * (c + 1)}", "chunk": c, "split": "labelled", "primary_label": "",
                          "labels": "sp0", "secondary_labels": "", "site": "S0", "hour": 6}
                         for f in range(4) for c in range(3)])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Two fold models (files F0, F2 in fold 0; F1, F3 in fold 1); data/features at shift 0 and
    data/features_labelled at -1 and 1 with arrays of their own; the head's oof.csv as train writes it."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    main = chunk_rows(0.0)
    arrays = {n: rng.normal(size=(len(main), 4)).astype(np.float32) for n in TOKENS}
    store.save("data/features", main, arrays, {"blocks": [0, 1]})
    moved = pd.concat([chunk_rows(-1.0), chunk_rows(1.0)], ignore_index=True)
    store.save("data/features_labelled", moved, {n: rng.normal(size=(len(moved), 4)).astype(np.float32) for n in TOKENS},
               {"blocks": [0, 1]})
    torch.manual_seed(0)
    folder = tmp_path / "models/heads/attn"
    folder.mkdir(parents=True)
    models = [heads.build_head(CONFIG).eval() for _ in range(2)]
    for k, m in enumerate(models):
        torch.save(m.state_dict(), folder / f"fold_{k}.pt")
    (folder / "config.json").write_text(pd.Series({"model": CONFIG, "n_folds": 2, "tokens": TOKENS,
                                                   "labels": LABELS}).to_json())
    fold_of = np.array([int(f[1]) % 2 for f in main["file_id"]])
    oof = np.zeros((len(main), 2), dtype=np.float32)
    for k, m in enumerate(models):
        oof[fold_of == k] = heads.predict_proba([m], [arrays[n][fold_of == k] for n in TOKENS])
    (tmp_path / "predictions/oof/attn").mkdir(parents=True)
    pd.concat([main[["row_id"]], pd.DataFrame(oof, columns=LABELS)], axis=1).to_csv(
        tmp_path / "predictions/oof/attn/oof.csv", index=False, float_format="%.6g")
    return {"models": models, "fold_of": fold_of, "row_ids": main["row_id"].tolist(), "oof": oof, "moved": moved}


def by_own_fold(models, fold_of, arrays, idx):
    return np.stack([heads.predict_proba([models[fold_of[i]]], [arrays[n][[j]] for n in TOKENS])[0]
                     for i, j in enumerate(idx)])


def test_each_chunk_at_each_shift_by_its_own_fold_model_then_averaged(workdir):
    got, record = base.head_oof_at("attn", [-1.0, 0.0, 1.0], workdir["row_ids"], workdir["fold_of"], LABELS, "prob")
    windows, arrays, _ = store.load("data/features_labelled")
    per_shift = []
    for shift in (-1.0, 1.0):
        at = windows.index[windows["shift_s"] == shift].to_numpy()  # same row order as the shift-0 rows
        per_shift.append(by_own_fold(workdir["models"], workdir["fold_of"], arrays, at))
    expected = (per_shift[0] + workdir["oof"] + per_shift[1]) / 3
    assert np.allclose(got, expected, atol=2e-6)
    assert not np.allclose(got, workdir["oof"], atol=1e-3)  # the shifts moved it: the check can fail
    assert record["shifts"] == [-1.0, 0.0, 1.0] and record["refit_max_abs_diff"] < base.REFIT_TOLERANCE


def test_shift_zero_alone_is_the_heads_own_oof(workdir):
    got, record = base.head_oof_at("attn", [0.0], workdir["row_ids"], workdir["fold_of"], LABELS, "prob")
    assert np.allclose(got, workdir["oof"], atol=1e-6) and record == {"shifts": [0.0]}


def test_fold_models_that_did_not_write_the_oof_are_refused(workdir):
    swapped = 1 - workdir["fold_of"]  # every chunk by the model that DID see its file
    with pytest.raises(base.BaseStageError, match="not the models that wrote it"):
        base.head_oof_at("attn", [-1.0, 0.0, 1.0], workdir["row_ids"], swapped, LABELS, "prob")


def test_a_shift_without_labelled_windows_is_named(workdir):
    with pytest.raises(base.BaseStageError, match=r"data/features_labelled/windows.csv: 12 labelled chunks .* missing "
                                                  r"at shift 2.0: add it to extract.labelled_shifts"):
        base.head_oof_at("attn", [0.0, 2.0], workdir["row_ids"], workdir["fold_of"], LABELS, "prob")
