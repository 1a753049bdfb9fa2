"""The pseudo stage and a student on a toy feature store."""
import json

import numpy as np
import pandas as pd
import pytest

from birdclef_eos.data import features
from birdclef_eos.heads import models as heads
from tests.fakes import toy_features
from tests.fakes.runtime import runtime

OPTIM = {"epochs": 1, "patience": 1, "min_delta": 0.0, "batch_size": 32, "lr": 0.003, "weight_decay": 0.01,
         "mixup_alpha": 0.2, "samples_per_epoch": None, "mix_lr_scale": 10.0}


def test_teacher_labels_and_student_contract(tmp_path, monkeypatch):
    from stages import pseudo, student, train
    monkeypatch.chdir(tmp_path)
    windows, arrays, meta, species = toy_features.toy_store(n_species=4, n_recordings=30, n_soundscapes=12)
    features.save("data/features", windows, arrays, meta)
    (tmp_path / "data/index").mkdir(parents=True)
    species.to_csv("data/index/species.csv", index=False)
    base = {"seed": 0, "threads": 1, "n_folds": 3, "fold_salt": "s", "secondary_weight": 1.0, "optim": OPTIM}
    train.run({"runtime": runtime(), "train": {**base, "blocks": [0, 1, 2], "model": {"d": 8, "heads": 2, "ffn": 16, "dropout": 0.1},
                                        "variants": {"attn": {"head": "attn", "soundscape_fraction": 0.2}}}}, "attn")

    with pytest.raises(pseudo.PseudoStageError, match="pseudo.teacher 'nope'"):
        pseudo.run({"pseudo": {"teacher": "nope"}})
    result = pseudo.run({"pseudo": {"teacher": "attn"}})
    unlabelled = windows[(windows["split"] == "unlabelled") & (windows["shift_s"] == 0)]
    per_fold = np.load(tmp_path / "data/pseudo/labels.npy")
    assert per_fold.shape == (3, len(unlabelled), len(species))
    assert np.allclose(np.load(tmp_path / "data/pseudo/ensemble.npy"), per_fold.mean(axis=0), atol=1e-6)
    rows = pd.read_csv(tmp_path / "data/pseudo/rows.csv", dtype=str)
    assert rows["row_id"].tolist() == unlabelled["row_id"].astype(str).tolist()
    assert result.summary["chunks"] == len(unlabelled)
    assert json.loads((tmp_path / "build/metrics/pseudo/summary.json").read_text()) == result.summary

    sources = {"focal": 0.75, "soundscape": 0.15, "pseudo": 0.10}
    for mode in ("ensemble", "fold"):
        params = {"runtime": runtime(), "train": base, "pseudo": {"mode": mode, "gate": 0.0, "floor": 0.0, "power": 1.0},
                  "students": {"pseudo": {"twin": "attn", "sources": sources}}}
        m = student.run(params, "pseudo").metrics
        assert 0 <= m["oof_macro_auc"] <= 1 and m["pseudo"]["mode"] == mode
        assert m["pseudo_chunks_kept_per_fold"] == [len(unlabelled)] * 3
    oof = pd.read_csv(tmp_path / "predictions/oof/pseudo/oof.csv")
    labelled = windows[(windows["split"] == "labelled") & (windows["shift_s"] == 0)]
    assert sorted(oof["row_id"].astype(str)) == sorted(labelled["row_id"].astype(str))
    models, config = heads.load_variant(tmp_path / "models/heads/pseudo")
    assert len(models) == 3 and config["tokens"] == ["block_00", "block_01", "block_02"]
    params["students"]["pseudo"]["sources"] = {"focal": 0.8, "soundscape": 0.0, "pseudo": 0.1}
    with pytest.raises(ValueError, match="sources = .*: expected shares summing to 1"):
        student.run(params, "pseudo")
    params["students"]["pseudo"]["sources"] = {"focal": 0.8, "pseudo": 0.1}
    with pytest.raises(ValueError, match=r"sources.soundscape\n.*Field required"):
        student.run(params, "pseudo")


def test_train_stage_with_two_local_workers_writes_the_sequential_bytes(tmp_path, monkeypatch, two_workers):
    """Two Dask workers (the session's local cluster as `runtime.scheduler`, tests/conftest.py): the
    folds run as tasks; the heads, OOF and fold records are the bytes of the in-process run (same
    `train.threads`)."""
    from stages import train
    monkeypatch.chdir(tmp_path)
    windows, arrays, meta, species = toy_features.toy_store(n_species=4, n_recordings=30, n_soundscapes=12)
    features.save("data/features", windows, arrays, meta)
    (tmp_path / "data/index").mkdir(parents=True)
    species.to_csv("data/index/species.csv", index=False)
    cfg = {"seed": 0, "threads": 1, "n_folds": 3, "fold_salt": "s", "secondary_weight": 1.0, "optim": OPTIM,
           "blocks": [0, 1, 2], "model": {"d": 8, "heads": 2, "ffn": 16, "dropout": 0.1},
           "variants": {"attn": {"head": "attn", "soundscape_fraction": 0.2}}}

    def written():
        folders = [tmp_path / "models/heads/attn", tmp_path / "predictions/oof/attn"]
        out = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for f in folders for p in sorted(f.rglob("*"))
               if p.is_file()}
        metrics = json.loads((tmp_path / "build/metrics/train/attn/metrics.json").read_text())
        return out, metrics["folds"], metrics["oof_macro_auc"]

    train.run({"runtime": runtime(workers=1, scheduler=None), "train": cfg}, "attn")
    sequential = written()
    train.run({"runtime": two_workers.runtime(), "train": cfg}, "attn")
    assert written() == sequential and len(sequential[0]) >= 4


def test_a_folder_without_unlabelled_soundscapes_skips_pseudo_labelling_with_a_note(tmp_path, monkeypatch):
    """Another year's folder or a user's subset: no unlabelled chunks. `pseudo` writes an empty set
    and says why; a student drops its pseudo share (the others rescaled) and says so; the pseudo
    table prints the note."""
    from birdclef_eos.report.pseudo import pseudo_markdown
    from stages import pseudo, student, train
    monkeypatch.chdir(tmp_path)
    windows, arrays, meta, species = toy_features.toy_store(n_species=4, n_recordings=30, n_soundscapes=12)
    keep = (windows["split"] != "unlabelled").to_numpy()
    assert not keep.all()
    windows = windows[keep].reset_index(drop=True)
    arrays = {n: np.asarray(a)[keep] for n, a in arrays.items()}
    features.save("data/features", windows, arrays, meta)
    (tmp_path / "data/index").mkdir(parents=True)
    species.to_csv("data/index/species.csv", index=False)
    base = {"seed": 0, "threads": 1, "n_folds": 3, "fold_salt": "s", "secondary_weight": 1.0, "optim": OPTIM}
    train.run({"runtime": runtime(), "train": {**base, "blocks": [0, 1, 2], "model": {"d": 8, "heads": 2, "ffn": 16, "dropout": 0.1},
                                        "variants": {"attn": {"head": "attn", "soundscape_fraction": 0.2}}}}, "attn")

    result = pseudo.run({"pseudo": {"teacher": "attn"}})
    assert result.summary["chunks"] == 0 and "no unlabelled soundscape" in result.summary["skipped"]
    assert np.load(tmp_path / "data/pseudo/labels.npy").shape == (3, 0, len(species))

    params = {"runtime": runtime(), "train": base, "pseudo": {"mode": "ensemble", "gate": 0.0, "floor": 0.0, "power": 1.0},
              "students": {"pseudo": {"twin": "attn", "sources": {"focal": 0.75, "soundscape": 0.15, "pseudo": 0.10}}}}
    m = student.run(params, "pseudo").metrics
    assert 0 <= m["oof_macro_auc"] <= 1 and m["pseudo_chunks"] == 0
    assert "students.pseudo.sources.pseudo 0.1 dropped" in m["pseudo_skipped"]
    assert m["sources"] == pytest.approx({"focal": 0.75 / 0.9, "soundscape": 0.15 / 0.9})

    table = pseudo_markdown({"teacher": "attn", "mode": "ensemble", "pseudo_labels": result.summary,
                             "bootstrap": {"confidence": 0.95, "draws": 10}, "rows": {},
                             "reference": {"model": "attn", "oof": 0.8}}, [])
    assert "No pseudo labels here: no unlabelled soundscape chunks" in table
