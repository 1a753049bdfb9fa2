"""Kaggle kernel bundles (issue 21), end to end: the v6 bundle's generated notebook, run as Kaggle runs
it (papermill, offline, a competition-layout folder whose test_soundscapes/ holds the hidden test
files), writes exactly the predict stage's submissions/v6/submission.csv.

The workspace is real but small: the smoke synthetic set, the perch_tiny backbone probed, every
window extracted by the extract stage, a seeded untrained attention head in models/heads/attn (the
bundle reproduces whatever the head is), then the predict, model_folder and bundle stages.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from birdclef_eos.heads import models as heads
from stages import bundle, dataset, extract, model_folder, predict
from stages.paths import PARAMS_FILE, ROOT
from tests.fakes.backbone_fixtures import probed_perch_tiny
from tests.fakes.competition import fill_test_soundscapes
from tests.fakes.repo_copy import deep_update

SMOKE = ROOT / "tests" / "stages" / "smoke_params.yaml"


def smoke_params() -> dict:
    params = yaml.safe_load(PARAMS_FILE.read_text())
    deep_update(params, yaml.safe_load(SMOKE.read_text()))
    params["extract"]["windows_per_recording"] = 1
    params["bundles"] = {"v6": {"kind": "predict", "submission": "v6"}}
    params["kaggle"]["vendor"] = ["tqdm"]  # the default list adds 17 MB of copies: seconds here
    return params


def write_attn_head(folder, blocks_json, species, seed=0, folds=2):
    inventory = json.loads(blocks_json.read_text())["blocks"]
    chosen = inventory[-3:]
    config = {"model": {"type": "attn", "channels": [b["channels"] for b in chosen], "n_classes": len(species),
                        "d": 16, "heads": 2, "ffn": 32, "dropout": 0.0},
              "n_folds": folds, "blocks": [b["index"] for b in chosen], "labels": species}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    for k in range(folds):
        torch.manual_seed(seed + k)
        torch.save(heads.build_head(config["model"]).state_dict(), folder / f"fold_{k}.pt")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    params = smoke_params()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        (root / "models").mkdir()
        for src, name in zip(probed_perch_tiny(), ("backbone_probed.onnx", "backbone.json", "blocks.json")):
            shutil.copyfile(src, root / "models" / name)
        dataset.run(params)
        extract.run(params)
        species = pd.read_csv(root / "data/index/species.csv").sort_values("label_idx").primary_label.tolist()
        write_attn_head(root / "models/heads/attn", root / "models/blocks.json", species)
        predict.run(params, "v6")
        folder = model_folder.run(params)
        kernel = bundle.run(params, "v6")
    return root, folder, kernel


def run_kernel(notebook, model_dir, test_dir, out_dir):
    env = dict(os.environ, EOS_MODEL_DIR=str(model_dir), EOS_TEST_DIR=str(test_dir), EOS_OUT_DIR=str(out_dir),
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(out_dir.parent / "executed.ipynb"),
                           "--cwd", str(out_dir.parent)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out_dir / "submission.csv"


def test_v6_bundle_reproduces_the_submission(workspace, tmp_path):
    root, folder, kernel = workspace
    assert kernel.files == ["birdclef-eos-v6.ipynb", "kernel-metadata.json"] and folder.bundles["v6"]["model"] == "attn"
    comp = tmp_path / "birdclef-2026"
    comp.mkdir()
    hidden = sorted((root / "data/hidden/test_soundscapes").iterdir())
    fill_test_soundscapes(comp, hidden)
    got = run_kernel(root / kernel.folder / kernel.files[0], root / "bundles/models", comp / "test_soundscapes",
                     tmp_path / "working")
    assert sorted(p.name for p in got.parent.iterdir()) == ["submission.csv"]  # the work folder is cleaned
    mine = pd.read_csv(got, dtype={"row_id": str}).set_index("row_id")
    want = pd.read_csv(root / "submissions/v6/submission.csv", dtype={"row_id": str}).set_index("row_id")
    assert sorted(mine.index) == sorted(want.index) and list(mine.columns) == list(want.columns)
    assert np.abs(mine.loc[want.index].to_numpy() - want.to_numpy()).max() <= 1e-6 + 1e-12


def test_kernel_stops_on_another_model_folder_version(workspace, tmp_path):
    root, _, kernel = workspace
    other = tmp_path / "models"
    shutil.copytree(root / "bundles/models", other, symlinks=True)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["bundles"]["v6"]["tta"] = [0.0]
    (other / "manifest.json").write_text(json.dumps(manifest))
    nb = json.loads((root / kernel.folder / kernel.files[0]).read_text())
    assert "MANIFEST_SHA256" in "".join(nb["cells"][1]["source"])
    env = dict(os.environ, EOS_MODEL_DIR=str(other), EOS_TEST_DIR=str(tmp_path), EOS_OUT_DIR=str(tmp_path))
    code = "".join(nb["cells"][1]["source"]) + "\n" + "".join(nb["cells"][2]["source"]).split("sys.path.insert")[0]
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "is not the one this kernel was built for" in proc.stderr


def test_model_folder_stores_each_file_once_and_pins_it(workspace):
    root, folder, kernel = workspace
    manifest = json.loads((root / "bundles/models/manifest.json").read_text())
    shas = [*manifest["files"].values(), *manifest["code"].values(), *manifest["vendor"].values()]
    assert folder.objects == len(set(shas)) == len(list((root / "bundles/models/objects").iterdir()))
    assert "birdclef_eos/bundle/infer.py" in manifest["code"] and "birdclef_eos/backbone/runner.py" in manifest["code"]
    assert not any(p.startswith("stages/") for p in manifest["code"])
    assert "index/prior_chunks.csv" in manifest["files"]
    prior = pd.read_csv(root / "bundles/models/objects" / manifest["files"]["index/prior_chunks.csv"])
    assert set(prior.split) == {"labelled"}  # held-out or test labels never ship
    meta = json.loads((root / kernel.folder / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["code_file"] == kernel.files[0]
    assert meta["dataset_sources"] == ["your-kaggle-username/birdclef-eos-models"]
    dataset = json.loads((root / "bundles/models/dataset-metadata.json").read_text())
    assert dataset["id"] == meta["dataset_sources"][0]
