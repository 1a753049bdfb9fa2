"""Kaggle kernel bundles, end to end: the v6 and eos7 bundles' generated notebooks, run as
Kaggle runs them (papermill, offline, a competition-layout folder whose test_soundscapes/ holds the
hidden test files), write exactly the predict stage's submissions/v6/submission.csv and the blend
stage's submissions/eos7/submission.csv; eos10 adds the sidecar, eos9 a chain whose SED weighs 0.4
(the spectrogram and sed stages at smoke size).

The workspace is real but small: the smoke synthetic set, the perch_tiny backbone probed, every
window extracted by the extract stage, a seeded untrained attention head in models/heads/attn (the
bundle reproduces whatever the head is) with a seeded OOF (the base stage's reference), the protossm
stage at smoke size, then the predict, base, blend, model_folder and bundle stages. The bundles that
need a further stage (eos9: spectrogram + sed; eos13: spectrogram + vit; real-data eos10:
sidecar_features' BirdNET extraction + sidecar) are built once, together, in a copy of it
(`extended`).

What costs time here is the kernel runs (a fresh Python that installs the carried onnxruntime wheel
and runs the backbone over the test audio), so each check runs a kernel only where no other test
already runs the same notebook on the same input: the v6 and eos7 default-weight scoring runs are
the sandbox's, compared byte for byte; papermill executes the eos7 notebook (at another blend
weight) and the eos10 one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
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
from stages import base, blend, bundle, dataset, extract, extract_labelled, model_folder, predict, protossm, submit
from stages.paths import PARAMS_FILE, ROOT
from tests.fakes.backbone_fixtures import probed_perch_tiny
from tests.fakes.competition import fill_test_soundscapes
from tests.fakes.kaggle_sandbox import KaggleSandbox
from tests.fakes.repo_copy import deep_update

SMOKE = ROOT / "tests" / "stages" / "smoke_params.yaml"


def smoke_params() -> dict:
    params = yaml.safe_load(PARAMS_FILE.read_text())
    deep_update(params, yaml.safe_load(SMOKE.read_text()))
    params["extract"]["windows_per_recording"] = 1
    # 30-s soundscapes (the competition's are 60 s): 6 chunks per file, which every stage and kernel handles
    # as 12 (ProtoSSM reads the length from the data); the backbone work of extract and of every kernel
    # scoring run halves
    params["dataset"]["soundscape_s"] = 30
    params["dataset"]["jobs"] = 1  # the bytes do not depend on it (tests/birdclef_eos/data/test_synthetic.py)
    params["bundles"] = {"v6": {"kind": "predict", "submission": "v6"}, "eos7": {"kind": "blend", "submission": "eos7"}}
    params["base"]["variants"] = {}  # eos8/eos9's knob variants: not needed here
    params["blends"] = {"eos7": params["blends"]["eos7"]}
    params["kaggle"]["owner"] = "eos-tester"  # the default null builds no Kaggle metadata
    # the head's OOF here is a seeded stand-in (write_oof) that its fold models never wrote: the base stage
    # compares at the head's shift 0 only (at v6's shifts it would re-predict with them, and refuse them)
    params["base"]["reference_tta"] = [0.0]
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
    metrics = Path("build/metrics/train") / folder.name  # what train writes (Figure 3 reads the head's blocks)
    metrics.mkdir(parents=True)
    (metrics / "metrics.json").write_text(json.dumps({"head": "attn", "blocks": config["blocks"],
                                                      "folds": [{}] * folds}))


def write_oof(path, chunks_csv, species, seed=0):
    """A seeded OOF of the head on the labelled chunks (the base stage's reference)."""
    chunks = pd.read_csv(chunks_csv, dtype={"row_id": str})
    rows = chunks.loc[chunks.split == "labelled", "row_id"]
    probs = np.random.default_rng(seed).uniform(size=(len(rows), len(species)))
    path.parent.mkdir(parents=True)
    pd.concat([rows.reset_index(drop=True), pd.DataFrame(probs, columns=species)], axis=1).to_csv(path, index=False)


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
        extract_labelled.run(params)  # ProtoSSM's OOF at every tta_candidates shift
        species = pd.read_csv(root / "data/index/species.csv").sort_values("label_idx").primary_label.tolist()
        write_attn_head(root / "models/heads/attn", root / "models/blocks.json", species)
        predict.run(params, "v6")
        submit.run(params, "v6")
        write_oof(root / "predictions/oof/attn/oof.csv", root / "data/index/chunks.csv", species)
        protossm.run(params)
        base.run(params)
        blend.run(params)
        folder = model_folder.run(params)
        kernel = bundle.build(params, "v6")
        bundle.build(params, "eos7")
    return root, folder, kernel


def run_kernel(notebook, model_dir, test_dir, out_dir):
    """The notebook executed by papermill (a Jupyter kernel, as Kaggle runs a notebook), its paths from
    the EOS_* environment variables; papermill is driven from this process (the kernel is its own)."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in [("EOS_MODEL_DIR", model_dir), ("EOS_TEST_DIR", test_dir), ("EOS_OUT_DIR", out_dir)]:
            mp.setenv(name, str(value))
        mp.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
        papermill.execute_notebook(str(notebook), str(out_dir.parent / "executed.ipynb"), cwd=str(out_dir.parent),
                                   progress_bar=False, execution_timeout=300)
    return out_dir / "submission.csv"


def test_v6_and_eos7_bundles_are_built_as_configured(workspace):
    """What the bundle and model_folder stages wrote for v6 and eos7. Both kernels' scoring runs, byte
    for byte against submissions/v6 and submissions/eos7, are test_kernel_passes_kaggles_save_and_scoring_runs'
    (under papermill: the eos7 notebook in the blend-weight test, eos10's below)."""
    root, folder, kernel = workspace
    assert kernel.files == ["birdclef-eos-v6.ipynb", "kernel-metadata.json"] and folder.bundles["v6"]["model"] == "attn"
    assert folder.bundles["eos7"] == {"kind": "blend", "submission": "eos7", "model": "protossm+attn"}
    manifest = json.loads((root / "bundles/models/manifest.json").read_text())
    cfg = manifest["bundles"]["eos7"]
    # the folder carries the entry; the shared `blend:` section (weight, space, taxonomy) is the kernel's
    assert cfg["entry"] == smoke_params()["blends"]["eos7"] and not {"weights", "space", "taxonomy"} & set(cfg)
    nb = json.loads((root / "bundles/kernels/eos7/birdclef-eos-eos7.ipynb").read_text())
    assert "BLEND = {'space': 'prob', 'taxonomy': {'class': 0.05, 'genus': 0.15}, 'weight': 0.07}" in \
        "".join(nb["cells"][1]["source"])
    assert cfg["parts"]["base"]["kind"] == "chain" and cfg["parts"]["base"]["weights"] == {"protossm": 1.0}
    assert "models/chain/protossm/fold_0.pt" in manifest["files"] and not any("chain/sed" in f for f in manifest["files"])
    assert {"birdclef_eos/chain/protossm.py", "birdclef_eos/scoring/blend.py"} <= set(manifest["code"])


def test_a_blend_weight_change_rebuilds_the_kernel_not_the_model_folder(workspace, tmp_path, monkeypatch):
    """`dvc exp run -S blend.weight=...`: neither model_folder nor the bundles list `blend`
    (the eos7 bundle reads the section from submissions/eos7/manifest.json, which dvc.yaml names as its
    dep); re-run with another weight the model folder writes the same manifest; the eos7 kernel
    notebook changes, v6's does not, and the eos7 kernel still writes exactly the blend stage's
    submissions/eos7 at the new weight."""
    root, _, _ = workspace
    monkeypatch.chdir(root)
    assert "blend" not in model_folder.PARAMS and "blend" not in bundle.PARAMS
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["bundle"]
    assert {"submissions/eos7/manifest.json", "submissions/v6/manifest.json", "submissions/base/manifest.json"} \
        <= set(stage["deps"])
    manifest = (root / "bundles/models/manifest.json").read_bytes()
    eos7_nb, v6_nb = root / "bundles/kernels/eos7/birdclef-eos-eos7.ipynb", root / "bundles/kernels/v6/birdclef-eos-v6.ipynb"
    before, v6_before = eos7_nb.read_bytes(), v6_nb.read_bytes()
    params = smoke_params()
    params["blend"]["weight"] = 0.2
    try:
        model_folder.run(params)
        assert (root / "bundles/models/manifest.json").read_bytes() == manifest
        blend.run(params)
        result = bundle.build(params, "eos7")
        bundle.build(params, "v6")
        assert eos7_nb.read_bytes() != before and v6_nb.read_bytes() == v6_before
        assert result.config["weights"] == pytest.approx({"base": 0.8, "v6": 0.2})
        assert result.manifest_sha256 == hashlib.sha256(manifest).hexdigest()
        comp = tmp_path / "birdclef-2026"
        comp.mkdir()
        fill_test_soundscapes(comp, sorted((root / "data/hidden/test_soundscapes").iterdir()))
        got = run_kernel(eos7_nb, root / "bundles/models", comp / "test_soundscapes", tmp_path / "working")
        assert sorted(p.name for p in got.parent.iterdir()) == ["submission.csv"]  # the work folder is cleaned
        mine = pd.read_csv(got, dtype={"row_id": str}).set_index("row_id")
        want = pd.read_csv(root / "submissions/eos7/submission.csv", dtype={"row_id": str}).set_index("row_id")
        assert sorted(mine.index) == sorted(want.index) and list(mine.columns) == list(want.columns)
        assert np.abs(mine.loc[want.index].to_numpy() - want.to_numpy()).max() <= 1e-6 + 1e-12
    finally:  # the other tests read the default weight's files
        blend.run(smoke_params())
        bundle.build(smoke_params(), "eos7")
        assert eos7_nb.read_bytes() == before


def test_a_post_processing_change_rebuilds_the_kernel_not_the_model_folder(workspace, tmp_path, monkeypatch):
    """`dvc exp run -S postprocess.prior_alpha=...`: the model folder carries no post-processing knob
    (the stage does not list `postprocess`), so it writes the same manifest; the v6 kernel notebook
    carries the knobs of the re-made submission (KNOBS, from submissions/v6/manifest.json) and its
    kernel writes exactly the submit stage's new submissions/v6."""
    root, _, _ = workspace
    monkeypatch.chdir(root)
    assert "postprocess" not in model_folder.PARAMS and "base.postprocess" not in model_folder.PARAMS
    manifest = (root / "bundles/models/manifest.json").read_bytes()
    v6_nb = notebook_of(root, "v6")
    before, sub_before = v6_nb.read_bytes(), (root / "submissions/v6/submission.csv").read_bytes()
    params = smoke_params()
    params["postprocess"]["prior_alpha"] = 0.25
    try:
        model_folder.run(params)
        assert (root / "bundles/models/manifest.json").read_bytes() == manifest
        submit.run(params, "v6")
        assert (root / "submissions/v6/submission.csv").read_bytes() != sub_before
        bundle.build(params, "v6")
        assert v6_nb.read_bytes() != before and "'prior_alpha': 0.25" in v6_nb.read_text()
        comp = tmp_path / "birdclef-2026"
        comp.mkdir()
        fill_test_soundscapes(comp, sorted((root / "data/hidden/test_soundscapes").iterdir()))
        got = run_kernel(v6_nb, root / "bundles/models", comp / "test_soundscapes", tmp_path / "working")
        assert got.read_bytes() == (root / "submissions/v6/submission.csv").read_bytes()
    finally:  # the other tests read the default knobs' files
        submit.run(smoke_params(), "v6")
        bundle.build(smoke_params(), "v6")
        assert v6_nb.read_bytes() == before


def test_the_stage_and_the_kernel_post_process_the_same_kinds():
    """The bundle stage writes KNOBS for these kinds; the kernel hands KNOBS to the same kinds."""
    from birdclef_eos.bundle import infer, kinds

    assert bundle.POSTPROCESSED == infer.POSTPROCESSED and set(bundle.POSTPROCESSED) <= set(kinds.KINDS)


def test_model_folder_refuses_parts_a_bundle_cannot_run(workspace, monkeypatch):
    root, _, _ = workspace
    monkeypatch.chdir(root)
    params = smoke_params()
    cache = Path(params["runtime"]["cache_dir"]).expanduser()  # real-data mode's converted BirdNET (none here)
    with pytest.raises(model_folder.ModelFolderError, match="made by kind 'blend', not 'predict'"):
        model_folder.bundle_config("x", {"kind": "predict", "submission": "eos7"}, params, cache)
    with pytest.raises(model_folder.ModelFolderError, match="not one of"):
        model_folder.bundle_config("x", {"kind": "blend9", "submission": "eos7"}, params, cache)
    params["base"]["source"] = "file"  # the real chain's file: its models are not here to carry
    with pytest.raises(model_folder.ModelFolderError, match=r"'base': base.source is 'file'"):
        model_folder.bundle_config("eos7", {"kind": "blend", "submission": "eos7"}, params, cache)
    params["base"]["source"] = "stages"
    saved = json.loads((root / "models/chain/protossm/config.json").read_text())
    mixing = {**saved, "config": {**saved["config"], "mix_logits": True}}
    monkeypatch.setattr(model_folder, "read_json", lambda path, what="": mixing)
    with pytest.raises(model_folder.ModelFolderError, match=r"'base':.*base.protossm.mix_logits: true"):
        model_folder.bundle_config("eos7", {"kind": "blend", "submission": "eos7"}, params, cache)
    monkeypatch.undo()
    monkeypatch.chdir(root)
    params["blends"]["eos10"] = {"parts": {"v6": "rest"}, "sidecar": {"submission": "v6"}}
    with pytest.raises(model_folder.ModelFolderError, match="sidecar.submission 'v6' is not the sidecar stage's"):
        model_folder.bundle_config("eos10", {"kind": "blend", "submission": "eos10"}, params, cache)
    params["blends"]["eos10"]["sidecar"]["submission"] = "sidecar"
    params["backbone"]["name"] = "perch_v2"  # real-data mode: the sidecar needs BirdNET's own extraction
    monkeypatch.setattr(model_folder, "SIDECAR_FEATURES", root / "no_sidecar_features")
    with pytest.raises(model_folder.ModelFolderError, match="no_sidecar_features/meta.json not found; run sidecar_features"):
        model_folder.bundle_config("eos10", {"kind": "blend", "submission": "eos10"}, params, cache)
    pointer = root / "pointer_sidecar_features"  # the default mode's store (a pointer), left from another backbone
    pointer.mkdir()
    (pointer / "meta.json").write_text(json.dumps({"mode": "reuse", "reuses": "data/features"}))
    monkeypatch.setattr(model_folder, "SIDECAR_FEATURES", pointer)
    with pytest.raises(model_folder.ModelFolderError, match="mode 'reuse', not 'extract'.*re-run sidecar_features"):
        model_folder.bundle_config("eos10", {"kind": "blend", "submission": "eos10"}, params, cache)
    shutil.rmtree(pointer)
    # a ViT size `vit.sizes` does not list is no submission (a listed one is the vit kind, tested below)
    params["blends"]["eos12"] = {"parts": {"v6": "rest", "vit999": 0.08}}
    assert "999" not in params["vit"]["sizes"]
    with pytest.raises(model_folder.ModelFolderError, match="'vit999' is not a submission a bundle can rebuild"):
        model_folder.bundle_config("eos12", {"kind": "blend", "submission": "eos12"}, params, cache)
    params["blends"]["eos12"]["parts"] = {"v6": "rest", "vit196": 0.08}  # listed, but the vit stage has not run
    with pytest.raises(model_folder.ModelFolderError, match="models/vit/196/config.json: not found; run vit@196 first"):
        model_folder.bundle_config("eos12", {"kind": "blend", "submission": "eos12"}, params, cache)


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
    shas = [*manifest["files"].values(), *manifest["code"].values(), *manifest["vendor"].values(),
            *manifest["wheels"].values()]
    assert sorted(manifest["wheels"]) == folder.wheels and [w.split("-")[2] for w in folder.wheels] == ["cp311", "cp312"]
    assert yaml.safe_load(PARAMS_FILE.read_text())["kaggle"]["vendor"] == []  # by default nothing beyond the image and wheels
    assert folder.objects == len(set(shas)) == len(list((root / "bundles/models/objects").iterdir()))
    assert "birdclef_eos/bundle/infer.py" in manifest["code"] and "birdclef_eos/backbone/runner.py" in manifest["code"]
    assert not any(p.startswith("stages/") for p in manifest["code"])
    assert "index/prior_chunks.csv" in manifest["files"]
    prior = pd.read_csv(root / "bundles/models/objects" / manifest["files"]["index/prior_chunks.csv"])
    assert set(prior.split) == {"labelled"}  # held-out or test labels never ship
    meta = json.loads((root / kernel.folder / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["code_file"] == kernel.files[0]
    assert meta["dataset_sources"] == ["eos-tester/birdclef-eos-models"]
    dataset = json.loads((root / "bundles/models/dataset-metadata.json").read_text())
    assert dataset["id"] == meta["dataset_sources"][0]


# ---------- Kaggle's two runs, in a sandbox that looks like Kaggle (tests/fakes/kaggle_sandbox.py) ----------

def sandbox_for(root, tmp_path):
    hidden = root / "data/hidden"
    sample = hidden / "sample_submission.csv"
    return KaggleSandbox(tmp_path, root / "bundles/models", "birdclef-eos-models", "birdclef-2026",
                         sample if sample.exists() else None)


def notebook_of(root, name):
    return root / "bundles/kernels" / name / f"birdclef-eos-{name}.ipynb"


@pytest.mark.parametrize("name", ["v6", "eos7"])
def test_kernel_passes_kaggles_save_and_scoring_runs(workspace, tmp_path, name):
    """Save run: test_soundscapes/ empty -> exit 0 and the header-only submission (the species columns
    in the scoring run's order). Scoring run: the hidden files -> the pipeline's submission byte for
    byte. Both read-only input, no network, CPU only, only the image's packages and the carried wheel."""
    root, _, _ = workspace
    box = sandbox_for(root, tmp_path)
    want = root / "submissions" / name / "submission.csv"
    saved = box.run(notebook_of(root, name))
    assert saved.returncode == 0, saved.stderr[-3000:]
    assert "installed offline: ['onnxruntime-1.23.2-cp311" in saved.stdout
    header = pd.read_csv(saved.submission)
    assert header.empty and list(header.columns) == list(pd.read_csv(want, nrows=0).columns)
    assert sorted(p.name for p in saved.working.iterdir()) == ["submission.csv"]
    box.set_test_files(sorted((root / "data/hidden/test_soundscapes").iterdir()))
    scored = box.run(notebook_of(root, name))
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert scored.submission.read_bytes() == want.read_bytes()
    assert sorted(p.name for p in scored.working.iterdir()) == ["submission.csv"]
    assert not [r for r in scored.refused if r.split()[0] in ("onnxruntime",)]


def edited(root, tmp_path, name, change):
    nb = json.loads(notebook_of(root, name).read_text())
    change(nb["cells"])
    path = tmp_path / "edited.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_the_sandbox_holds_only_what_kaggle_has(workspace, tmp_path):
    """The guard bites: without the carried wheel onnxruntime cannot be imported (this venv has it,
    Kaggle's image does not); a package outside the image (dvc) is refused; so is the network and a
    write to the read-only input."""
    root, _, _ = workspace
    box = sandbox_for(root, tmp_path / "box")

    def no_install(cells):
        cells[2]["source"] = [line.replace("eos_fork.install_wheels(WORK)", "[]") for line in cells[2]["source"]]
    box.set_test_files(sorted((root / "data/hidden/test_soundscapes").iterdir())[:1])
    run = box.run(edited(root, tmp_path, "v6", no_install))
    assert run.returncode != 0 and "No module named 'onnxruntime'" in run.stderr
    for code, said in [("import dvc", "No module named 'dvc'"),
                       ("import socket; socket.create_connection(('example.com', 80))", "no network"),
                       ("(MODEL_DIR / 'x').write_text('x')", "read-only file system")]:
        run = box.run(edited(root, tmp_path, "v6", lambda cells: cells.insert(2, kernel_cell(code))))
        assert run.returncode != 0 and said in run.stderr, (code, run.stderr[-1500:])


def kernel_cell(code):
    from birdclef_eos.bundle.kernel import cell
    return cell("code", code)


def test_bundle_stage_refuses_bad_kaggle_values_and_builds_without_an_owner(workspace, monkeypatch):
    """Every kaggle.* knob that reaches the notebook or its metadata is refused by name before anything is
    written (an injection string, a placeholder owner); owner null (the default) writes the notebook only."""
    root, _, _ = workspace
    monkeypatch.chdir(root)
    before = {p: p.read_bytes() for p in (root / "bundles/kernels/v6").iterdir()}
    inject = 'x")); import os; os.system("touch /tmp/eos-pwned")  #'
    for knob, bad in [("competition", inject), ("model_dataset", inject), ("kernel_prefix", inject),
                      ("owner", inject), ("owner", "your-kaggle-username")]:
        params = smoke_params()
        params["kaggle"][knob] = bad
        with pytest.raises(bundle.BundleStageError, match=f"kaggle.{knob}"):
            bundle.build(params, "v6")
        assert {p: p.read_bytes() for p in (root / "bundles/kernels/v6").iterdir()} == before
    params = smoke_params()
    params["kaggle"]["owner"] = None
    try:
        result = bundle.build(params, "v6")
        assert result.files == ["birdclef-eos-v6.ipynb"]
        assert sorted(p.name for p in (root / "bundles/kernels/v6").iterdir()) == ["birdclef-eos-v6.ipynb"]
    finally:
        bundle.build(smoke_params(), "v6")
    assert {p: p.read_bytes() for p in (root / "bundles/kernels/v6").iterdir()} == before


def test_eos10_bundle_reproduces_the_sidecar_corrected_blend(workspace, tmp_path, monkeypatch):
    """eos10 = eos7 then the sidecar's masked rank correction. The workspace's backbone (perch_tiny)
    stands in for BirdNET: the sidecar stages and the model folder are told it is the sidecar's
    backbone, so the sidecar reads the main embedding (the default mode's pointer). The kernel's
    save run writes the header only; its scoring run writes the blend stage's submissions/eos10."""
    import dataclasses

    from birdclef_eos.backbone import registry
    from stages import sidecar, sidecar_features
    root, _, _ = workspace
    monkeypatch.chdir(root)
    params = smoke_params()
    name = params["backbone"]["name"]
    monkeypatch.setattr(sidecar_features, "SIDECAR_BACKBONE", name)
    monkeypatch.setattr(model_folder, "SIDECAR_BACKBONE", name)
    # sidecar_features picks its mode from the backbone registry: perch_tiny, here the sidecar's own
    # backbone, needs no second extraction (as birdnet_v24 in the default mode)
    monkeypatch.setitem(registry.BACKBONES, name, dataclasses.replace(registry.spec(name), sidecar_extraction=False))
    full = yaml.safe_load(PARAMS_FILE.read_text())
    params["blends"]["eos10"] = full["blends"]["eos10"]
    params["bundles"]["eos10"] = {"kind": "blend", "submission": "eos10"}
    try:
        assert sidecar_features.run(params).mode == "reuse"  # the main embedding, pointed to
        sidecar.run(params)
        blend.run(params)
        model_folder.run(params)
        bundle.build(params, "eos10")
        manifest = json.loads((root / "bundles/models/manifest.json").read_text())
        assert manifest["bundles"]["eos10"]["sidecar"]["kind"] == "sidecar"
        assert "models/heads/sidecar/fold_0.pt" in manifest["files"]
        nb = root / "bundles/kernels/eos10/birdclef-eos-eos10.ipynb"
        empty = tmp_path / "save" / "test_soundscapes"
        empty.mkdir(parents=True)
        header = run_kernel(nb, root / "bundles/models", empty, tmp_path / "save_working")
        assert pd.read_csv(header).empty
        comp = tmp_path / "birdclef-2026"
        comp.mkdir()
        fill_test_soundscapes(comp, sorted((root / "data/hidden/test_soundscapes").iterdir()))
        got = run_kernel(nb, root / "bundles/models", comp / "test_soundscapes", tmp_path / "working")
        mine = pd.read_csv(got, dtype={"row_id": str}).set_index("row_id")
        want = pd.read_csv(root / "submissions/eos10/submission.csv", dtype={"row_id": str}).set_index("row_id")
        eos7 = pd.read_csv(root / "submissions/eos7/submission.csv", dtype={"row_id": str}).set_index("row_id")
        assert sorted(mine.index) == sorted(want.index) and list(mine.columns) == list(want.columns)
        assert np.abs(want.to_numpy() - eos7.loc[want.index].to_numpy()).max() > 1e-4  # the correction moved something
        diff = np.abs(mine.loc[want.index].to_numpy() - want.to_numpy()).max()
        print(f"eos10 bundle: max abs difference to submissions/eos10: {diff:.3g}")
        assert diff == 0  # eos7, a blend part, mixed unrounded as the blend stage mixes it
    finally:  # the other tests read the default bundles' model folder and blends
        blend.run(smoke_params())
        model_folder.run(smoke_params())


def extended_params() -> dict:
    """smoke_params with the three bundles that need a further stage: eos9 (the chain's SED at 0.4 in
    base_sed), eos13 (the ViT at 224 px blended into eos7) and eos10 in real-data mode (the workspace's
    main backbone, perch_tiny, stands in for Perch v2, so the sidecar reads BirdNET V2.4's own extraction)."""
    full = yaml.safe_load(PARAMS_FILE.read_text())
    params = smoke_params()
    params["base"]["variants"] = {n: full["base"]["variants"][n] for n in ("base_sed", "base_yukiz")}
    params["blends"].update({n: full["blends"][n] for n in ("eos9_anchor", "eos9", "eos13", "eos10")})
    params["bundles"].update({n: {"kind": "blend", "submission": n} for n in ("eos9", "eos13", "eos10")})
    params["sidecar"]["extract"].update(threads=1, batch_size=2, batch_windows=8)  # recorded and replayed as set
    return params


@pytest.fixture(scope="module")
def extended(workspace, tmp_path_factory):
    """A copy of the workspace with eos9, eos13 and real-data eos10 built together: one spectrogram
    stage for the SED and the ViT, then sed, vit@224, base (with its variants), sidecar_features
    (BirdNET over every main window: the converted ONNX from `runtime.cache_dir`, converted once per
    machine), sidecar, blend, one model folder for all bundles, and the three kernels. A copy, so the
    tests on `workspace` keep the default bundles' files."""
    from stages import sed, sidecar, sidecar_features, spectrogram, vit
    root = tmp_path_factory.mktemp("bundle_extended")
    shutil.copytree(workspace[0], root, dirs_exist_ok=True)
    params = extended_params()
    assert params["backbone"]["name"] == "perch_tiny" != model_folder.SIDECAR_BACKBONE
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        spectrogram.run(params)
        sed.run(params)
        vit.run(params, "224")
        base.run(params)
        sidecar_features.run(params)
        sidecar.run(params)
        blend.run(params)
        model_folder.run(params)
        for name in ("eos9", "eos13", "eos10"):
            bundle.build(params, name)
    return root, params


def kaggles_two_runs(root, box, name):
    """Kaggle's save run (no test files: the header-only submission, the scoring run's columns) and its
    scoring run (the hidden files) of bundle ``name`` in ``box``; the scoring run's submission.csv."""
    want = root / "submissions" / name / "submission.csv"
    saved_run = box.run(notebook_of(root, name))
    assert saved_run.returncode == 0, saved_run.stderr[-3000:]
    header = pd.read_csv(saved_run.submission)
    assert header.empty and list(header.columns) == list(pd.read_csv(want, nrows=0).columns)
    box.set_test_files(sorted((root / "data/hidden/test_soundscapes").iterdir()))
    scored = box.run(notebook_of(root, name))
    assert scored.returncode == 0, scored.stderr[-3000:]
    return scored.submission


def test_eos10_bundle_in_real_data_mode_carries_birdnet(extended, tmp_path, monkeypatch):
    """Real-data mode: the workspace's main backbone is perch_tiny (standing in for Perch v2), so the
    sidecar reads BirdNET V2.4's own extraction (sidecar_features: the converted ONNX from
    `runtime.cache_dir` over every main window). The model folder carries that ONNX and its labels,
    stored once by sha256, and the sidecar config records the `sidecar.extract` knobs; the kernel runs
    BirdNET over the test windows as the stage does. In Kaggle's sandbox the save run writes the header
    only and the scoring run writes the blend stage's submissions/eos10 byte for byte."""
    from birdclef_eos.bundle import infer
    from birdclef_eos.data import features
    from birdclef_eos.io.files import sha256_file
    root, params = extended
    monkeypatch.chdir(root)
    assert json.loads((root / "data/sidecar_features/meta.json").read_text())["mode"] == "extract"
    manifest = json.loads((root / "bundles/models/manifest.json").read_text())
    side = manifest["bundles"]["eos10"]["sidecar"]
    x = side["extraction"]
    assert {k: x[k] for k in params["sidecar"]["extract"]} == params["sidecar"]["extract"]
    assert x["output"] == "embedding" and side["files"]["sidecar_backbone"] == "models/sidecar_birdnet"
    meta = json.loads((root / "data/sidecar_features/meta.json").read_text())
    assert manifest["files"]["models/sidecar_birdnet/backbone.onnx"] == x["onnx_sha256"] == meta["onnx_sha256"]
    stored = root / "bundles/models/objects" / x["onnx_sha256"]
    assert sha256_file(stored) == x["onnx_sha256"]  # content-addressed like every other file
    assert "birdclef_eos/backbone/birdnet.py" in manifest["code"]
    # the kernel's BirdNET pass alone, in this process, on the carried files: the stage's test rows exactly
    view = tmp_path / "files" / side["files"]["sidecar_backbone"]
    view.mkdir(parents=True)
    for name in ("backbone.onnx", "labels.txt"):
        (view / name).symlink_to(root / "bundles/models/objects" / manifest["files"][f"models/sidecar_birdnet/{name}"])
    audio = infer.TestAudio(root / "data/hidden/test_soundscapes")
    rows, arrays = infer.sidecar_birdnet(tmp_path / "files", side, audio, side["tta"], ["embedding"])
    stage_rows, stage_arrays, _ = features.load("data/sidecar_features")
    at = stage_rows.reset_index().set_index(["row_id", "shift_s"]).loc[list(zip(rows.row_id, rows.shift_s)), "index"]
    assert len(rows) == (stage_rows.source == "test").sum() and np.array_equal(
        arrays["embedding"], stage_arrays["embedding"][at.to_numpy()])
    scored = kaggles_two_runs(root, sandbox_for(root, tmp_path / "box"), "eos10")
    want = root / "submissions/eos10/submission.csv"
    theirs = pd.read_csv(want, dtype={"row_id": str}).set_index("row_id")
    eos7 = pd.read_csv(root / "submissions/eos7/submission.csv", dtype={"row_id": str}).set_index("row_id")
    assert np.abs(theirs.to_numpy() - eos7.loc[theirs.index].to_numpy()).max() > 1e-4  # the correction moved something
    mine = pd.read_csv(scored, dtype={"row_id": str}).set_index("row_id")
    print(f"eos10 real-data bundle: max abs difference to submissions/eos10: "
          f"{np.abs(mine.loc[theirs.index].to_numpy() - theirs.to_numpy()).max():.3g}")
    assert scored.read_bytes() == want.read_bytes()


def test_eos9_bundle_runs_the_sed_and_reproduces_the_blend(extended, tmp_path, monkeypatch):
    """eos9 = the three-part anchor (base_yukiz, base_sed: the chain with its SED at 0.4, base) + v6.
    The model folder carries the sed stage's fold models with the log-mel settings of the spectrogram
    stage; the kernel computes the SED's input from the test audio itself. Kaggle's save run writes the
    header only; its scoring run writes the blend stage's submissions/eos9 byte for byte, and the SED
    part alone equals the sed stage's predictions/chain/sed/test.csv."""
    from birdclef_eos.bundle import infer
    root, params = extended
    monkeypatch.chdir(root)
    assert params["base"]["variants"]["base_sed"]["blend"]["sed"] > 0
    manifest = json.loads((root / "bundles/models/manifest.json").read_text())
    chain = manifest["bundles"]["eos9"]["parts"]["eos9_anchor"]["parts"]["base_sed"]
    assert chain["weights"] == {"protossm": 0.6, "sed": 0.4} and chain["files"]["sed"] == "models/chain/sed"
    assert "models/chain/sed/fold_4.pt" in manifest["files"]
    assert {"birdclef_eos/chain/sed.py", "birdclef_eos/audio/spectrogram.py"} <= set(manifest["code"])
    saved = json.loads((root / "models/chain/sed/config.json").read_text())
    assert saved["spec"] == json.loads((root / "data/spectrograms/spec.json").read_text())
    # the SED part alone, in this process: the sed stage's test predictions as written
    labels = pd.read_csv(root / "data/index/species.csv").sort_values("label_idx").primary_label.astype(str).tolist()
    audio = infer.TestAudio(root / "data/hidden/test_soundscapes")
    part = infer.sed_test(root, chain, audio, labels)  # root/models/chain/sed: what the folder carries
    want_sed = pd.read_csv(root / "predictions/chain/sed/test.csv", dtype={"row_id": str})
    assert part["row_id"].tolist() == want_sed["row_id"].tolist()
    assert (part[labels].to_numpy() == want_sed[labels].to_numpy()).all()
    scored = kaggles_two_runs(root, sandbox_for(root, tmp_path / "box"), "eos9")
    want = root / "submissions/eos9/submission.csv"
    mine = pd.read_csv(scored, dtype={"row_id": str}).set_index("row_id")
    sed_free = pd.read_csv(root / "submissions/eos7/submission.csv", dtype={"row_id": str}).set_index("row_id")
    print(f"eos9 bundle: max abs difference to submissions/eos9: "
          f"{np.abs(mine.to_numpy() - pd.read_csv(want, dtype={'row_id': str}).set_index('row_id').to_numpy()).max():.3g}")
    assert np.abs(mine.to_numpy() - sed_free.loc[mine.index].to_numpy()).max() > 1e-4  # the anchor is not eos7's base
    assert scored.read_bytes() == want.read_bytes()


def test_a_vit_blend_bundle_runs_the_vit_and_reproduces_the_blend(extended, tmp_path, monkeypatch):
    """eos12 and eos13 blend the ViT branch into eos7 at 8%. The model folder carries the vit stage's
    fold models with the log-mel settings of the spectrogram stage; the kernel computes the ViT's input
    from the test audio at the ViT's TTA shifts. The ViT part alone equals the vit stage's raw
    submission; Kaggle's save run writes the header only; its scoring run writes the blend stage's
    submission byte for byte."""
    from birdclef_eos.bundle import infer
    root, params = extended
    monkeypatch.chdir(root)
    key = "224"
    name = f"vit{key}"
    full = yaml.safe_load(PARAMS_FILE.read_text())
    assert full["blends"]["eos13"]["parts"][name] > 0 and params["blends"]["eos13"] == full["blends"]["eos13"]
    manifest = json.loads((root / "bundles/models/manifest.json").read_text())
    part = manifest["bundles"]["eos13"]["parts"][name]
    assert part["kind"] == "vit" and part["files"]["vit"] == f"models/vit/{key}"
    assert f"models/vit/{key}/fold_0.pt" in manifest["files"]
    assert {"birdclef_eos/heads/vit.py", "birdclef_eos/audio/spectrogram.py"} <= set(manifest["code"])
    # the ViT part alone, in this process: the vit stage's raw submission as written
    view = tmp_path / "files"  # the model folder's logical paths the part reads, on the workspace's files
    (view / "index").mkdir(parents=True)
    (view / "models/vit").mkdir(parents=True)
    (view / "index/species.csv").symlink_to(root / "data/index/species.csv")
    (view / "models/vit" / key).symlink_to(root / "models/vit" / key)
    made = infer.vit_kind(view, part, root / "data/hidden/test_soundscapes")
    written = infer.submission.as_written(made, infer.SUBMISSION_FORMAT)
    want_vit = pd.read_csv(root / f"submissions/{name}/submission.csv", dtype={"row_id": str})
    assert written["row_id"].tolist() == want_vit["row_id"].tolist()
    assert (written.iloc[:, 1:].to_numpy() == want_vit.iloc[:, 1:].to_numpy()).all()
    scored = kaggles_two_runs(root, sandbox_for(root, tmp_path / "box"), "eos13")
    want = root / "submissions/eos13/submission.csv"
    eos7 = pd.read_csv(root / "submissions/eos7/submission.csv", dtype={"row_id": str}).set_index("row_id")
    mine = pd.read_csv(scored, dtype={"row_id": str}).set_index("row_id")
    assert np.abs(mine.to_numpy() - eos7.loc[mine.index].to_numpy()).max() > 1e-4  # the ViT moved the blend
    assert scored.read_bytes() == want.read_bytes()
