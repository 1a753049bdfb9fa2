"""The model folder (content-addressed, sha256-checked), the generated kernel and the inference kinds."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from birdclef_eos.bundle import folder, kernel
from birdclef_eos.bundle.infer import CHAIN_PARTS, KINDS, BundleError, run_bundle, soundscape_chunks
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
    with pytest.raises(RuntimeError, match="does not match this kernel"):
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
    one = kernel.dumps(kernel.notebook("v6", cfg, "eos-me/models", "birdclef-2026", "ab" * 32))
    assert one == kernel.dumps(kernel.notebook("v6", cfg, "eos-me/models", "birdclef-2026", "ab" * 32))
    nbformat.validate(nbformat.reads(one, as_version=4))
    assert "DATASET = 'models'" in one and "COMPETITION = 'birdclef-2026'" in one
    assert "BLEND = None" in one  # only a blend bundle's kernel carries the shared `blend:` section
    shared = {"weight": 0.07, "taxonomy": {"genus": 0.15, "class": 0.05}, "space": "prob"}
    two = kernel.dumps(kernel.notebook("eos7", {"kind": "blend", "submission": "eos7"}, "eos-me/models", "birdclef-2026",
                                       "ab" * 32, shared, "base 0.93, v6 0.07"))
    nbformat.validate(nbformat.reads(two, as_version=4))
    assert "BLEND = {'space': 'prob', 'taxonomy': {'class': 0.05, 'genus': 0.15}, 'weight': 0.07}" in two
    assert "blend=BLEND" in two and "base 0.93, v6 0.07" in two
    assert "KNOBS = None" in one and "knobs=KNOBS" in one
    three = kernel.dumps(kernel.notebook("v6", cfg, "eos-me/models", "birdclef-2026", "ab" * 32,
                                         knobs={"v6": {"prior_alpha": 0.5, "smooth_mode": "nearest"}}))
    assert "KNOBS = {'v6': {'prior_alpha': 0.5, 'smooth_mode': 'nearest'}}" in three
    with pytest.raises(kernel.KernelError, match="cannot write list"):
        kernel.literal({"weight": [0.07]})
    meta = kernel.metadata("eos-v6", "eos-me", "eos v6", "eos-v6.ipynb", "eos-me/models", "birdclef-2026")
    assert meta["id"] == "eos-me/eos-v6" and meta["enable_internet"] is False and meta["enable_gpu"] is False


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
    assert {"predict", "chain", "blend", "sidecar"} <= set(KINDS)
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
    eos7["parts"]["v6"] = {"name": "v6", "kind": "sidecar9"}
    with pytest.raises(BundleError, match="part 'v6' has kind 'sidecar9'"):
        KINDS["blend"](tmp_path, eos7, tmp_path, shared=shared)
    eos10 = {"name": "eos10", "kind": "blend", "submission": "eos10", "parts": {"v6": {"name": "v6", "kind": "predict"}},
             "entry": {"parts": {"v6": "rest"}, "sidecar": {"submission": "sidecar", "weight": 0.3}}}
    with pytest.raises(BundleError, match="sidecar correction but the bundle carries no sidecar-kind config"):
        KINDS["blend"](tmp_path, eos10, tmp_path, shared=shared)
    assert set(CHAIN_PARTS) == {"protossm", "sed"}  # every model the base stage blends
    part["weights"] = {"protossm": 0.6, "vit": 0.4}
    with pytest.raises(BundleError, match=r"weighs \['vit'\] > 0, which a bundle cannot run"):
        KINDS["chain"](tmp_path, part, tmp_path)


# ---------- generated code takes values, never text; a kernel runs only pinned bytes ----------

INJECTIONS = ['x")); import os; os.system("touch /tmp/eos-pwned")  #', "x'; import os #", "a\nimport os",
              "../../etc", "Birdclef-2026", "your-kaggle-username"]


def test_every_notebook_value_is_validated_against_kaggles_rules():
    cfg = {"kind": "predict", "submission": "v6"}
    for bad in INJECTIONS[:5]:  # the last is a valid slug (a placeholder only as a user name)
        with pytest.raises(kernel.KernelError, match="kaggle.competition"):
            kernel.notebook("v6", cfg, "models", bad, "ab" * 32)
        with pytest.raises(kernel.KernelError, match="kaggle.model_dataset|kaggle.owner"):
            kernel.notebook("v6", cfg, bad, "birdclef-2026", "ab" * 32)
        if bad in INJECTIONS[:4]:  # a bundle name may have capitals and look like a user name
            with pytest.raises(kernel.KernelError, match="bundles"):
                kernel.notebook(bad, cfg, "models", "birdclef-2026", "ab" * 32)
        with pytest.raises(kernel.KernelError, match="sha256"):
            kernel.notebook("v6", cfg, "models", "birdclef-2026", bad)
        with pytest.raises(kernel.KernelError, match="kaggle.kernel_prefix"):
            kernel.kernel_slug(bad, "v6")
        with pytest.raises(kernel.KernelError, match="kaggle.owner"):
            kernel.metadata("eos-v6", bad, "eos v6", "eos-v6.ipynb", f"{bad}/models", "birdclef-2026")
        with pytest.raises(kernel.KernelError, match="kaggle.owner"):
            kernel.dataset_metadata(bad, "models")
    with pytest.raises(kernel.KernelError, match="a placeholder"):
        kernel.check_user("your-kaggle-username", "kaggle.owner")
    with pytest.raises(kernel.KernelError, match="kaggle.owner = 'your-kaggle-username': a placeholder"):
        kernel.metadata("eos-v6", "your-kaggle-username", "eos v6", "eos-v6.ipynb",
                        "your-kaggle-username/models", "birdclef-2026")
    assert kernel.kernel_slug("birdclef-eos", "eos_7") == "birdclef-eos-eos-7"


def test_values_are_written_as_literals_never_spliced():
    """Even a string the validators never see (a `blend:` value) lands as one constant: the paths cell
    is imports and ``NAME = <constant>`` assignments only, each equal to the value given."""
    import ast

    for bad in INJECTIONS:
        shared = {"space": bad, "taxonomy": {bad: 0.1}, "weight": 0.07}
        nb = kernel.notebook("v6", {"kind": "blend", "submission": bad}, "models", "birdclef-2026", "ab" * 32, shared,
                             bad)
        tree = ast.parse("".join(nb["cells"][1]["source"]))
        for node in tree.body:
            assert isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign)), ast.dump(node)
        consts = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                  if isinstance(n, ast.Assign) and n.targets[0].id.isupper() and n.targets[0].id not in
                  ("KAGGLE", "MODEL_DIR", "TEST_DIR", "OUT_DIR")}
        assert consts == {"DATASET": "models", "COMPETITION": "birdclef-2026", "BUNDLE": "v6",
                          "MANIFEST_SHA256": "ab" * 32, "BLEND": shared, "KNOBS": None}


def test_schema_and_kernel_share_kaggles_rules():
    from stages import schema

    assert schema.KAGGLE_SLUG.pattern == kernel.SLUG.pattern and schema.KAGGLE_USER.pattern == kernel.USER.pattern
    assert schema.BUNDLE_NAME.pattern == kernel.BUNDLE_NAME.pattern
    assert schema.KAGGLE_PLACEHOLDERS == kernel.PLACEHOLDERS
    params = schema.load_params()
    assert params["kaggle"]["owner"] is None and not schema.check(params)[1]
    for knob in ("owner", "competition", "model_dataset", "kernel_prefix"):
        for bad in INJECTIONS[:3] + ["your-kaggle-username"] * (knob == "owner"):
            bent = json.loads(json.dumps(params))
            bent["kaggle"][knob] = bad
            problems = schema.check(bent, ["kaggle"])[1]
            assert [p.path for p in problems] == [f"kaggle.{knob}"], (knob, bad, problems)
    bent = json.loads(json.dumps(params))
    bent["bundles"][INJECTIONS[0]] = {"kind": "predict", "submission": "v6"}
    assert any(p.path == "bundles" for p in schema.check(bent)[1])


def small_folder(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"weights")
    out = tmp_path / "models"
    folder.build(out, {"x/a.bin": a}, {}, {}, {"v": {"kind": "predict"}}, kernel.ENTRY)
    return out


def rewrite_manifest(out, change):
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("logical", ["/tmp/eos-escape/x", "../escape/x", "x/../../escape", "x//y", "./x"])
def test_a_manifest_path_outside_the_work_folder_is_refused(tmp_path, logical):
    out = small_folder(tmp_path)
    outside = tmp_path / "escape"
    outside.mkdir()
    (outside / "x").write_text("the user's file")
    rewrite_manifest(out, lambda m: m["files"].update({logical: m["files"]["x/a.bin"]}))
    entry = load_entry(out)
    with pytest.raises(entry.FolderError, match="leaves the work folder"):
        entry.materialise(tmp_path / "work")
    assert (outside / "x").read_text() == "the user's file" and not (tmp_path / "work/files").exists()
    with pytest.raises(folder.FolderError, match="stays inside"):
        folder.build(tmp_path / "m2", {logical: tmp_path / "escape/x"}, {}, {}, {}, kernel.ENTRY)


def test_a_link_out_of_the_work_folder_is_refused(tmp_path):
    out = small_folder(tmp_path)
    outside = tmp_path / "escape"
    outside.mkdir()
    work = tmp_path / "work"
    (work / "files").mkdir(parents=True)
    (work / "files" / "x").symlink_to(outside, target_is_directory=True)
    entry = load_entry(out)
    with pytest.raises(entry.FolderError, match="links outside the work folder"):
        entry.materialise(work)
    assert list(outside.iterdir()) == []


def test_a_missing_object_is_named_by_its_logical_path(tmp_path):
    out = small_folder(tmp_path)
    for obj in (out / "objects").iterdir():
        obj.unlink()
    entry = load_entry(out)
    with pytest.raises(entry.FolderError, match=r"files/x/a.bin: its object objects/[0-9a-f]{64} is missing"):
        entry.materialise(tmp_path / "work")


def test_the_notebook_runs_only_the_pinned_entry_module(tmp_path):
    """eos_fork.py changed after the manifest was pinned: the notebook stops before running it."""
    import hashlib
    import os
    import subprocess
    import sys

    out = small_folder(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["entry_sha256"] == hashlib.sha256((out / "eos_fork.py").read_bytes()).hexdigest()
    pinned = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    nb = kernel.notebook("v", {"kind": "predict", "submission": "v"}, "models", "birdclef-2026", pinned)
    marker = tmp_path / "ran"
    setup = "".join(nb["cells"][1]["source"]) + "\n" + "".join(nb["cells"][2]["source"])
    env = dict(os.environ, EOS_MODEL_DIR=str(out), EOS_OUT_DIR=str(tmp_path / "working"), EOS_TEST_DIR=str(tmp_path))
    (tmp_path / "working").mkdir()
    ok = subprocess.run([sys.executable, "-c", setup], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    with open(out / "eos_fork.py", "a") as f:
        f.write(f"\nopen({str(marker)!r}, 'w').write('tampered code ran')\n")
    bad = subprocess.run([sys.executable, "-c", setup], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "eos_fork.py is not the manifest's" in bad.stderr
    assert not marker.exists()


def test_pinned_wheels_file_is_read_strictly(tmp_path):
    from birdclef_eos.bundle import wheels

    pins = wheels.read(Path(__file__).resolve().parents[3] / "kaggle" / "wheels.txt")
    assert {(w.name, w.python) for w in pins} == {("onnxruntime", "cp312"), ("onnxruntime", "cp311")}
    bad = tmp_path / "wheels.txt"
    bad.write_text("# pins\nonnxruntime>=1.20 cp312 manylinux_2_27_x86_64 " + "a" * 64 + "\n")
    with pytest.raises(wheels.WheelError, match=r"wheels.txt:2: .* is not '<name>==<version>"):
        wheels.read(bad)
    bad.write_text(("onnxruntime==1.23.2 cp312 manylinux_2_27_x86_64 " + "a" * 64 + "\n") * 2)
    with pytest.raises(wheels.WheelError, match="pinned twice"):
        wheels.read(bad)


def test_post_processing_knobs_come_from_the_kernel():
    """The model folder carries no post-processing knobs; the kernel's KNOBS hands each post-processed part
    (predict, chain; a blend's parts too) its own, and a part without knobs is refused, naming it."""
    from birdclef_eos.bundle.infer import with_knobs

    cfg = {"name": "eos7", "kind": "blend", "submission": "eos7",
           "parts": {"base": {"name": "base", "kind": "chain", "submission": "base"},
                     "v6": {"name": "v6", "kind": "predict", "submission": "v6"},
                     "vit224": {"name": "vit224", "kind": "vit", "submission": "vit224"}}}
    got = with_knobs(cfg, {"base": {"sigma": 1.0}, "v6": {"sigma": 2.0}})
    assert got["parts"]["base"]["knobs"] == {"sigma": 1.0} and got["parts"]["v6"]["knobs"] == {"sigma": 2.0}
    assert "knobs" not in got["parts"]["vit224"] and "knobs" not in got and "knobs" not in cfg["parts"]["v6"]
    with pytest.raises(BundleError, match="part 'v6': no post-processing knobs for submission 'v6'"):
        with_knobs(cfg, {"base": {"sigma": 1.0}})
    with pytest.raises(BundleError, match="part 'base': submission 'base' is post-processed but no knobs"):
        with_knobs(cfg, None)
    own = {"name": "v6", "kind": "predict", "submission": "v6", "knobs": {"sigma": 3.0}}
    assert with_knobs(own, None)["knobs"] == {"sigma": 3.0}  # a config that carries its own (no KNOBS passed)
