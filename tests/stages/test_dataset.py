"""Smoke test: `dvc repro dataset` on the smoke size in a temporary copy of the repository.

It must produce the outputs, a second repro must be a no-op, and deleting the outputs and
forcing a re-run must give the same hashes in dvc.lock.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stages.schema import load_params
from tests.fakes.repo_copy import REPO, VENV_BIN, copy_repo, sh

SHIPPED = load_params(REPO / "params.yaml")


def outs_hashes(lock_path: Path) -> dict[str, str]:
    lock = yaml.safe_load(lock_path.read_text())
    return {o["path"]: o["md5"] for o in lock["stages"]["dataset"]["outs"]}


@pytest.mark.skipif(not (VENV_BIN / "dvc").exists(), reason="needs the project venv (setup.sh)")
def test_dvc_repro_dataset_smoke(tmp_path):
    repo = tmp_path / "repo"
    copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # smoke scale, one process (the bytes do not depend on `jobs`: tests/birdclef_eos/data/test_synthetic.py)
    # and 30-s soundscapes: what is tested is DVC's bookkeeping of the stage, not the set's size
    params["dataset"].update(scale="smoke", source="synthetic", jobs=1, soundscape_s=30)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], repo)
    sh(["git", "config", "user.email", "test@localhost"], repo)
    sh(["git", "config", "user.name", "test"], repo)
    dvc = str(VENV_BIN / "dvc")

    sh([dvc, "repro", "dataset"], repo)
    for name in ("species", "recordings", "soundscapes", "chunks"):
        assert (repo / "data" / "index" / f"{name}.csv").exists()
    assert (repo / "data" / "hidden" / "solution.csv").exists()
    assert (repo / "reports" / "dataset.ipynb").exists()
    chunks = pd.read_csv(repo / "data" / "index" / "chunks.csv", keep_default_na=False)
    assert set(chunks.split) == {"labelled", "unlabelled", "test"}
    for path in pd.read_csv(repo / "data" / "index" / "recordings.csv").path:
        assert (repo / path).is_file()  # index paths are relative to the repository root
    first = outs_hashes(repo / "dvc.lock")

    again = sh([dvc, "repro", "dataset"], repo)
    assert "didn't change" in again, again

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / "reports")
    sh([dvc, "repro", "dataset", "-f"], repo)
    assert outs_hashes(repo / "dvc.lock") == first


def test_real_mode_indexes_a_competition_folder(tmp_path, monkeypatch):
    """source: birdclef validates and indexes a real-layout folder (same tables as synthetic)."""
    from birdclef_eos.data import birdclef
    from stages import dataset
    from tests.birdclef_eos.data.test_birdclef import make_folder

    (tmp_path / "kaggle").mkdir()
    make_folder(tmp_path / "kaggle")
    monkeypatch.chdir(tmp_path)
    summary = dataset.run({"dataset": {**SHIPPED["dataset"], "source": "birdclef", "root": "kaggle",
                                       "public_fraction": 0.3, "holdout": {"share": 0, "group": "file", "seed": 0}}})
    assert summary.n_species == 3 and summary.n_recordings == 3
    assert (tmp_path / "data" / "dataset" / "source.json").exists()
    assert (tmp_path / "data" / "hidden" / "README.md").exists()
    rec = pd.read_csv(tmp_path / "data" / "index" / "recordings.csv", keep_default_na=False)
    assert list(rec.columns) == birdclef.RECORDING_COLUMNS
    assert all((tmp_path / p).is_file() for p in rec.path)


def test_unknown_source_or_size_is_a_clear_error():
    from stages import dataset

    with pytest.raises(ValueError, match=r"source\n.*'synthetic' or 'birdclef'"):
        dataset.run({"dataset": {**SHIPPED["dataset"], "source": "kaggle"}})
    with pytest.raises(ValueError, match="scale = 'huge': expected a key of scales: smoke | default"):
        dataset.run({"dataset": {**SHIPPED["dataset"], "scale": "huge"}})


def test_fingerprint_stage_writes_a_small_stable_record(tmp_path, monkeypatch):
    from stages import fingerprint
    from tests.birdclef_eos.data.test_birdclef import make_folder

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "data" / "source_fingerprint.json"
    fingerprint.run({"dataset": {"source": "synthetic", "root": "../nowhere"}})
    assert out.read_text() == '{\n  "source": "synthetic"\n}\n'
    (tmp_path / "kaggle").mkdir()
    make_folder(tmp_path / "kaggle")
    real = {"dataset": {"source": "birdclef", "root": "kaggle"}}
    fingerprint.run(real)
    first = out.read_bytes()
    assert len(first) < 2000 and b"train_audio" in first
    fingerprint.run(real)
    assert out.read_bytes() == first
    (tmp_path / "kaggle" / "train_audio" / "aaa1" / "XC9.ogg").write_bytes(b"new")
    fingerprint.run(real)
    assert out.read_bytes() != first
    with pytest.raises(FileNotFoundError, match="dataset.root 'absent'"):
        fingerprint.run({"dataset": {"source": "birdclef", "root": "absent"}})


@pytest.mark.skipif(not (VENV_BIN / "dvc").exists(), reason="needs the project venv (setup.sh)")
def test_dvc_reruns_dataset_exactly_when_the_real_folder_changes(tmp_path):
    """Real-data mode through DVC: a second repro skips `dataset`; a file added to the folder
    outside the repository makes it run again."""
    from tests.birdclef_eos.data.test_birdclef import make_folder

    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    make_folder(kaggle)
    repo = tmp_path / "repo"
    copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["dataset"].update(source="birdclef", root=str(kaggle))
    params["dataset"]["holdout"]["share"] = 0  # one labelled file: no local board (tests/stages/test_real_mode.py has one)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], repo)
    dvc = str(VENV_BIN / "dvc")

    first = sh([dvc, "repro", "dataset"], repo)
    assert "Running stage 'fingerprint'" in first and "Running stage 'dataset'" in first
    again = sh([dvc, "repro", "dataset"], repo)
    assert "Stage 'dataset' didn't change" in again, again
    shutil.copy(kaggle / "train_audio" / "aaa1" / "XC0.ogg", kaggle / "train_audio" / "aaa1" / "XC7.ogg")
    changed = sh([dvc, "repro", "dataset"], repo)
    assert "Running stage 'dataset'" in changed, changed
