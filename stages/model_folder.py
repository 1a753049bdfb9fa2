"""Stage `model_folder` (issue 21): the shared, content-addressed model folder every kernel bundle reads.

For each bundle under `bundles:` it resolves what the bundle runs (its kind; for `predict`: the
submission's head, TTA shifts and post-processing knobs, and the backbone settings the extract stage
used) and stores every file once under bundles/models/objects/<sha256>: the probed ONNX and its
descriptions, the head's checkpoints, the species table, the labelled chunks the site/hour prior is
fitted on (labelled rows only: real-data mode's held-out files are not among them), the library code
the kernel runs (birdclef_eos/bundle/infer.py and what it imports) and the vendored packages
(`kaggle.vendor`). manifest.json maps logical paths to sha256s; eos_fork.py is the entry a kernel or a
fork imports; dataset-metadata.json is what `kaggle datasets create -p bundles/models` reads. Upload the
folder as one Kaggle dataset (README: Kaggle kernels).
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from birdclef_eos.bundle import folder, kernel
from birdclef_eos.bundle.infer import KINDS
from birdclef_eos.io.files import atomic_dir, sha256_file
from birdclef_eos.scoring import postprocess
from stages.paths import BACKBONE_JSON, BLOCKS_JSON, HEADS, INDEX, MODEL_FOLDER, PROBED_ONNX, ROOT

PARAMS = ("bundles", "kaggle", "submissions", "postprocess", "backbone.threads", "backbone.batch_size",
          "backbone.chunk_mapping", "backbone.frontend", "dataset.sample_rate", "extract.batch_windows",
          "extract.on_bad_audio")


class ModelFolderError(ValueError):
    pass


@dataclass
class ModelFolderResult:
    """What the model_folder notebook shows. bundles: {name: kind, submission, model}; objects: files
    stored (each once); megabytes: their total; shared_megabytes: what separate copies per bundle
    would have cost; manifest_sha256: what each kernel pins."""
    bundles: dict
    objects: int
    megabytes: float
    shared_megabytes: float
    code_files: int
    vendor_files: int
    manifest_sha256: str


def bundle_config(name: str, entry: dict, params: dict) -> tuple[dict, dict[str, Path]]:
    """(the bundle's inference config, {logical path: file} it reads besides the shared ones)."""
    if entry["kind"] not in KINDS:
        raise ModelFolderError(f"params.yaml: bundles.{name}.kind '{entry['kind']}' is not one of {sorted(KINDS)}")
    subs = params["submissions"]
    if entry["submission"] not in subs:
        raise ModelFolderError(f"params.yaml: bundles.{name}.submission '{entry['submission']}' is not under "
                               f"`submissions:` ({sorted(subs)})")
    sub = subs[entry["submission"]]
    knobs = postprocess.resolve_knobs(params["postprocess"], sub.get("postprocess", False), entry["submission"])
    head_dir = HEADS / sub["model"]
    head_files = sorted(p for p in head_dir.glob("*") if p.is_file())
    if not (head_dir / "config.json").exists():
        raise ModelFolderError(f"{head_dir}/config.json: not found; run train@{sub['model']} first")
    b, x = params["backbone"], params["extract"]
    cfg = {"name": name, "kind": entry["kind"], "submission": entry["submission"], "model": sub["model"],
           "tta": [float(s) for s in sub["tta"]], "knobs": asdict(knobs),
           "backbone": {"threads": b["threads"], "batch_size": b["batch_size"], "chunk_mapping": b["chunk_mapping"],
                        "frontend": b["frontend"], "sample_rate": params["dataset"]["sample_rate"],
                        "batch_windows": x["batch_windows"], "on_bad_audio": x["on_bad_audio"]},
           "files": {"probed_onnx": "models/backbone_probed.onnx", "backbone_json": "models/backbone.json",
                     "blocks_json": "models/blocks.json", "head": f"models/heads/{sub['model']}",
                     "species": "index/species.csv", "prior_chunks": "index/prior_chunks.csv"}}
    return cfg, {f"models/heads/{sub['model']}/{p.name}": p for p in head_files}


def run(params: dict, key: str | None = None) -> ModelFolderResult:
    bundles = params["bundles"]
    if not bundles:
        raise ModelFolderError("params.yaml: `bundles:` is empty; name at least one (e.g. v6: {kind: predict, submission: v6})")
    configs, files = {}, {}
    for name, entry in bundles.items():
        configs[name], own = bundle_config(name, entry, params)
        files.update(own)
    code = {p.relative_to(ROOT).as_posix(): p
            for p in folder.code_closure(ROOT / "birdclef_eos" / "bundle" / "infer.py", ROOT / "birdclef_eos")}
    vendor = folder.vendor_files(params["kaggle"]["vendor"], params["kaggle"]["vendor_exclude"])
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    labelled = chunks.loc[chunks["split"] == "labelled", ["row_id", "split", "site", "hour", "labels"]]
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(MODEL_FOLDER) as out:
        prior_chunks = Path(tmp) / "prior_chunks.csv"
        labelled.to_csv(prior_chunks, index=False)
        files.update({"models/backbone_probed.onnx": PROBED_ONNX, "models/backbone.json": BACKBONE_JSON,
                      "models/blocks.json": BLOCKS_JSON, "index/species.csv": INDEX / "species.csv",
                      "index/prior_chunks.csv": prior_chunks})
        manifest = folder.build(out, files, code, vendor, configs, kernel.ENTRY)
        k = params["kaggle"]
        (out / "dataset-metadata.json").write_text(kernel.dumps(kernel.dataset_metadata(k["owner"], k["model_dataset"])))
        sizes = {p.name: p.stat().st_size for p in (out / "objects").iterdir()}
    shared = sum(sizes[sha] for sha in {**manifest["code"], **manifest["vendor"]}.values())
    per_bundle = sum(sizes[manifest["files"][lp]] for c in configs.values()
                     for lp in manifest["files"] if not lp.startswith("models/heads/") or
                     lp.startswith(c["files"]["head"] + "/"))
    return ModelFolderResult(
        bundles={n: {k: c[k] for k in ("kind", "submission", "model")} for n, c in configs.items()},
        objects=len(sizes), megabytes=round(sum(sizes.values()) / 2**20, 1),
        shared_megabytes=round((per_bundle + shared * len(configs)) / 2**20, 1),
        code_files=len(manifest["code"]), vendor_files=len(manifest["vendor"]),
        manifest_sha256=sha256_file(MODEL_FOLDER / "manifest.json"))
