"""The model folder (content-addressed, sha256-checked), the generated kernel and the inference kinds."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from birdclef_eos.bundle import folder, kernel
from birdclef_eos.bundle.infer import KINDS, BundleError, run_bundle, soundscape_chunks
from birdclef_eos.scoring.blend import BlendError

PACKAGE = Path(__file__).resolve().parents[3] / "birdclef_eos"


def load_entry(model_dir: Path):
    spec = importlib.util.spec_from_file_location(f"eos_fork_{abs(hash(model_dir))}", model_dir / "eos_fork.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_code_closure_follows_imports_only_inside_the_package():
    files = {p.relative_to(PACKAGE.parent).as_posix() for p in folder.code_closure(PACKAGE / "bundle/infer.py", PACKAGE)}
    assert {"birdclef_eos/heads/models.py", "birdclef_eos/scoring/postprocess.py", "birdclef_eos/__init__.py",
            "birdclef_eos/bundle/__init__.py"} <= files
    assert not any("synthetic" in f or "probe/" in f for f in files)


def test_same_bytes_stored_once_and_tampering_is_caught(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    out = tmp_path / "models"
    manifest = folder.build(out, {"x/a.bin": a, "y/b.bin": b}, {}, {}, {"v": {"kind": "predict"}}, kernel.ENTRY)
    assert manifest["files"]["x/a.bin"] == manifest["files"]["y/b.bin"]
    assert len(list((out / "objects").iterdir())) == 1
    entry = load_entry(out)
    work = entry.materialise(tmp_path / "work")
    assert (work / "files/y/b.bin").read_bytes() == b"weights"
    (out / "objects" / manifest["files"]["x/a.bin"]).write_bytes(b"other")
    with pytest.raises(RuntimeError, match="is not the manifest's"):
        entry.materialise(tmp_path / "work2")


def test_missing_input_and_vendor_name_the_culprit(tmp_path):
    with pytest.raises(folder.FolderError, match="nothing.bin"):
        folder.build(tmp_path / "m", {"a": tmp_path / "nothing.bin"}, {}, {}, {}, kernel.ENTRY)
    with pytest.raises(folder.FolderError, match="no-such-dist"):
        folder.vendor_files(["no-such-dist"], [])
    vendored = folder.vendor_files(["tqdm"], [])
    assert "tqdm/__init__.py" in vendored and not any("__pycache__" in k for k in vendored)


def test_generated_notebook_is_valid_and_deterministic():
    cfg = {"kind": "predict", "submission": "v6"}
    one = kernel.dumps(kernel.notebook("v6", cfg, "me/models", "birdclef-2026", "ab" * 32))
    assert one == kernel.dumps(kernel.notebook("v6", cfg, "me/models", "birdclef-2026", "ab" * 32))
    nbformat.validate(nbformat.reads(one, as_version=4))
    assert "/kaggle/input/models" in one and "/kaggle/input/birdclef-2026/test_soundscapes" in one
    assert "BLEND = None" in one  # only a blend bundle's kernel carries the shared `blend:` section
    shared = {"weight": 0.07, "taxonomy": {"genus": 0.15, "class": 0.05}, "space": "prob"}
    two = kernel.dumps(kernel.notebook("eos7", {"kind": "blend", "submission": "eos7"}, "me/models", "birdclef-2026",
                                       "ab" * 32, shared, "base 0.93, v6 0.07"))
    nbformat.validate(nbformat.reads(two, as_version=4))
    assert "BLEND = {'space': 'prob', 'taxonomy': {'class': 0.05, 'genus': 0.15}, 'weight': 0.07}" in two
    assert "blend=BLEND" in two and "base 0.93, v6 0.07" in two
    with pytest.raises(TypeError, match="cannot write list"):
        kernel.literal({"weight": [0.07]})
    meta = kernel.metadata("eos-v6", "me", "eos v6", "eos-v6.ipynb", "me/models", "birdclef-2026")
    assert meta["id"] == "me/eos-v6" and meta["enable_internet"] is False and meta["enable_gpu"] is False


def test_kinds_and_errors(tmp_path):
    assert "predict" in KINDS
    (tmp_path / "manifest.json").write_text(json.dumps({"bundles": {"b": {"kind": "blend9"}}}))
    with pytest.raises(BundleError, match="no bundle 'v6'"):
        run_bundle(tmp_path, "v6", tmp_path)
    with pytest.raises(BundleError, match="kind 'blend9'"):
        run_bundle(tmp_path, "b", tmp_path)
    (tmp_path / "test_soundscapes").mkdir()
    with pytest.raises(BundleError, match="no test soundscapes"):
        soundscape_chunks(tmp_path / "test_soundscapes")


def test_blend_and_chain_kinds_refuse_what_they_lack(tmp_path):
    assert {"predict", "chain", "blend"} <= set(KINDS)
    part = {"name": "base", "kind": "chain", "weights": {"protossm": 0.6, "sed": 0.4}}
    eos7 = {"name": "eos7", "kind": "blend", "submission": "eos7", "parts": {"base": part},
            "entry": {"parts": {"base": "rest", "v6": "weight"}, "taxonomy": True}}
    shared = {"weight": 0.07, "space": "prob", "taxonomy": {"genus": 0.15, "class": 0.05}}
    (tmp_path / "manifest.json").write_text(json.dumps({"bundles": {"eos7": eos7}}))
    with pytest.raises(BundleError, match=r"kind blend needs the shared `blend:` section"):
        run_bundle(tmp_path, "eos7", tmp_path)  # a kernel that passes no BLEND
    with pytest.raises(BundleError, match=r"weights name part\(s\) \['v6'\] the bundle does not carry"):
        run_bundle(tmp_path, "eos7", tmp_path, shared=shared)
    with pytest.raises(BlendError, match=r"sum to 1.5 > 1"):
        KINDS["blend"](tmp_path, eos7, tmp_path, shared={**shared, "weight": 1.5})
    eos7["parts"]["v6"] = {"name": "v6", "kind": "sidecar"}
    with pytest.raises(BundleError, match="part 'v6' has kind 'sidecar'"):
        KINDS["blend"](tmp_path, eos7, tmp_path, shared=shared)
    with pytest.raises(BundleError, match=r"weighs \['sed'\] > 0, which a bundle cannot run"):
        KINDS["chain"](tmp_path, part, tmp_path)
