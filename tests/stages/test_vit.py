"""The vit@<size> stage on a toy spectrogram store: per-size outputs that never touch each
other, the named position-embedding error for a checkpoint of the other size, and resizing."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from birdclef_eos.audio.spectrogram import MelSpec
from birdclef_eos.data import spectrograms
from birdclef_eos.heads import vit as vit_model
from tests.fakes import toy_features
from tests.fakes.runtime import runtime

OPTIM = {"epochs": 1, "patience": 1, "min_delta": 0.0, "batch_size": 16, "lr": 0.003, "weight_decay": 0.01,
         "mixup_alpha": 0.2, "samples_per_epoch": 48}
SIZE_OUTPUTS = ("models/vit/{k}", "predictions/oof/vit{k}", "build/metrics/vit/{k}", "submissions/vit{k}")


def toy_spectrograms(root: Path, n_mels: int = 8, frames: int = 20):
    rng = np.random.default_rng(0)
    windows = toy_features.toy_windows(n_species=4, n_recordings=16, windows_per_recording=2, n_soundscapes=8, rng=rng)
    windows = windows[windows["shift_s"] == 0].reset_index(drop=True)
    test = []
    for t in range(2):
        stem = f"BC2026_Test_{t:04d}_S00_20240520_063000"
        test += [dict(source="test", file_id=stem, start_s=5.0 * c, shift_s=0.0, row_id=f"{stem}_{5 * (c + 1)}", chunk=c,
                      split="test", primary_label="", labels="", secondary_labels="", site="S00", hour=6)
                 for c in range(12)]
    windows = pd.concat([windows, pd.DataFrame(test)], ignore_index=True)
    labels = toy_features.species_names(4)
    mels = rng.normal(size=(len(windows), n_mels, frames)).astype(np.float32)
    for row, cell in enumerate(windows["labels"]):
        for label in filter(None, cell.split(";")):
            mels[row, labels.index(label) * 2] += 2.0   # a band per species
    spectrograms.save(root / "data/spectrograms", windows, mels,
                      MelSpec(sample_rate=32000, n_fft=256, hop=8000, n_mels=n_mels, fmin=20.0, fmax=16000.0))
    index = root / "data/index"
    index.mkdir(parents=True)
    pd.DataFrame({"label_idx": range(4), "primary_label": labels}).to_csv(index / "species.csv", index=False)
    chunks = windows[windows["source"] != "focal"][["row_id", "file_id", "chunk", "split", "site", "hour", "labels"]]
    chunks.rename(columns={"file_id": "soundscape_id"}).to_csv(index / "chunks.csv", index=False)
    return windows


def params(**sizes):
    base = {"196": {"image": 196, "init": None, "resize_pos_embed": False},
            "224": {"image": 224, "init": None, "resize_pos_embed": False}}
    base.update(sizes)
    return {"runtime": runtime(), "train": {"n_folds": 2, "fold_salt": "s", "secondary_weight": 1.0},
            "vit": {"sizes": base, "model": {"patch": 14, "width": 8, "depth": 1, "heads": 2, "ffn": 16, "dropout": 0.0,
                                                                                       "pool": "cls"},
                    "folds": 1, "soundscape_fraction": 0.2, "optim": OPTIM, "tta": [0.0], "seed": 0, "threads": 1}}


def digests(key: str) -> dict[str, str]:
    out = {}
    for pattern in SIZE_OUTPUTS:
        for f in sorted(Path(pattern.format(k=key)).rglob("*")):
            if f.is_file():
                out[f.as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_sizes_keep_their_own_files_and_a_wrong_size_checkpoint_is_named(tmp_path, monkeypatch):
    from stages import vit
    monkeypatch.chdir(tmp_path)
    windows = toy_spectrograms(tmp_path)

    r224 = vit.run(params(), "224")
    m = r224.metrics
    assert m["pos_embed_shape"] == [1, 257, 8] and m["image"] == 224 and m["folds_trained"] == [0]
    assert 0 <= m["oof_macro_auc"] <= 1
    sub = pd.read_csv(tmp_path / "submissions/vit224/submission.csv")
    assert len(sub) == 24 and list(sub.columns[1:]) == toy_features.species_names(4)
    manifest = json.loads((tmp_path / "submissions/vit224/manifest.json").read_text())
    assert manifest["submission"] == "vit224" and manifest["submission_sha256"]
    assert "models/vit/224/fold_0.pt" in manifest["sha256"]
    oof = pd.read_csv(tmp_path / "predictions/oof/vit224/oof.csv")
    assert 0 < len(oof) < (windows["split"] == "labelled").sum()     # the trained fold's held-out chunks only
    assert (tmp_path / "build/metrics/vit/224/curves/fold_0/plots/metrics/loss.tsv").exists()
    before = digests("224")
    assert len(before) >= 6

    r196 = vit.run(params(), "196")
    assert r196.metrics["pos_embed_shape"] == [1, 197, 8]
    assert digests("224") == before                      # training 196 touched no 224 file
    assert set(digests("196")) == {p.replace("224", "196") for p in before}

    # the 196-px checkpoint as the init of the 224-px model: both shapes and the file named
    checkpoint = tmp_path / "models/vit/196/fold_0.pt"
    wrong = params(**{"224": {"image": 224, "init": str(checkpoint), "resize_pos_embed": False}})
    with pytest.raises(vit.VitStageError) as err:
        vit.run(wrong, "224")
    text = str(err.value)
    assert "vit.sizes.224.init" in text and str(checkpoint) in text
    assert "[1, 197, 8]" in text and "[1, 257, 8]" in text
    assert digests("224") == before                      # the failed run wrote nothing

    # asking for interpolation trains from the resized checkpoint
    resized = params(**{"224": {"image": 224, "init": str(checkpoint), "resize_pos_embed": True}})
    m = vit.run(resized, "224").metrics
    assert m["init_report"]["resized_pos_embed"] == [[1, 197, 8], [1, 257, 8]]
    models, config = vit_model.load_folds(tmp_path / "models/vit/224")
    assert tuple(models[0].pos_embed.shape) == (1, 257, 8) and config["folds"] == [0]


def test_same_params_same_bytes(tmp_path, monkeypatch):
    from stages import vit
    monkeypatch.chdir(tmp_path)
    toy_spectrograms(tmp_path)
    vit.run(params(), "196")
    first = digests("196")
    vit.run(params(), "196")
    assert digests("196") == first


def test_unknown_size_and_too_many_folds(tmp_path, monkeypatch):
    from stages import vit
    monkeypatch.chdir(tmp_path)
    with pytest.raises(vit.VitStageError, match="no entry '300'"):
        vit.run(params(), "300")
    p = params()
    p["vit"]["folds"] = 3
    with pytest.raises(vit.VitStageError, match="vit.folds = 3 exceeds train.n_folds = 2"):
        vit.run(p, "196")


@pytest.mark.parametrize("path, value, message", [
    ("vit.sizes.196.image", 200, "vit.sizes.196.image = 200: expected a multiple of vit.model.patch (14)"),
    ("vit.model.heads", 3, "vit.model.heads = 3: expected a divisor of vit.model.width (64)"),
    ("vit.folds", 6, "vit.folds = 6: expected at most train.n_folds (5)"),
    ("vit.model.pool", "max", "vit.model.pool = 'max'"),
    ("vit.tta", [0.0, 1.0], "vit.tta = [0.0, 1.0]: shifts [1.0] have no spectrograms"),
    ("blends.eos10.sidecar.submission", "nope", "blends.eos10.sidecar.submission = 'nope': expected a submission"),
    ("blends.eos10.sidecar.weight", 1.5, "blends.eos10.sidecar.weight = 1.5"),
    ("sidecar.head.model.d", 130, "sidecar.head.model.d = 130: expected a multiple of sidecar.head.model.heads (4)"),
    ("sidecar.head.tta", [0.0, 2.0], "sidecar.head.tta = [0.0, 2.0]: shifts [2.0] are not extracted"),
    ("sidecar.extract.chunk_mapping", "left", "sidecar.extract.chunk_mapping = 'left'"),
])
def test_vit_and_sidecar_rules_name_the_knob(path, value, message):
    import copy

    from stages import schema
    params = copy.deepcopy(schema.load_params())
    node = params
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(schema.ParamsError) as err:
        schema.validate(params)
    assert message in str(err.value)


def test_two_local_workers_write_the_in_process_bytes(tmp_path, monkeypatch, two_workers):
    """Two Dask workers (the session's local cluster as `runtime.scheduler`, tests/conftest.py): both
    folds are tasks (crossval.train_folds with the stage's picklable
    builder, here loading an init checkpoint); every output file is the in-process one."""
    from stages import vit
    monkeypatch.chdir(tmp_path)
    toy_spectrograms(tmp_path)
    init = tmp_path / "init.pt"
    typed = vit.Params.of(params()).vit
    torch.save(vit_model.build_vit(vit.model_config(typed, typed.sizes["196"], 4)).state_dict(), init)
    p = params(**{"196": {"image": 196, "init": str(init), "resize_pos_embed": False}})
    p["vit"]["folds"] = 2
    vit.run(p, "196")
    first = digests("196")
    assert any("fold_1.pt" in f for f in first)
    vit.run({**p, "runtime": two_workers.runtime()}, "196")
    assert digests("196") == first
