"""Stage `bundle@<name>` (issue 21): the Kaggle kernel of one bundle, generated from code.

Writes bundles/kernels/<name>/<slug>.ipynb (the inference notebook: birdclef_eos/bundle/kernel.py)
and kernel-metadata.json (`kaggle kernels push -p bundles/kernels/<name>`). The notebook pins the
sha256 of the model folder's manifest (the model_folder stage), so a kernel run against another
version of the model dataset stops before predicting. Both are DVC outputs: a re-run writes a new
version in the cache and never overwrites the bytes a Kaggle score belongs to (`git checkout <tag>
&& dvc checkout` brings them back).
"""
from __future__ import annotations

from dataclasses import dataclass

from birdclef_eos.bundle import kernel
from birdclef_eos.io.files import atomic_dir, read_json, sha256_file
from stages.paths import KERNELS, MODEL_FOLDER

PARAMS = ("kaggle", "bundles.{key}")


class BundleStageError(ValueError):
    pass


@dataclass
class BundleResult:
    """What the bundle notebook shows: the kernel's id and files, the manifest it pins, the bundle's config."""
    bundle: str
    kernel_id: str
    folder: str
    files: list[str]
    manifest_sha256: str
    config: dict


def run(params: dict, key: str | None = None) -> BundleResult:
    if key not in params["bundles"]:
        raise BundleStageError(f"params.yaml: no bundle '{key}' under `bundles:` ({sorted(params['bundles'])})")
    k = params["kaggle"]
    manifest = read_json(MODEL_FOLDER / "manifest.json", "run the model_folder stage")
    if key not in manifest["bundles"]:
        raise BundleStageError(f"{MODEL_FOLDER}/manifest.json: no bundle '{key}'; re-run the model_folder stage")
    config = manifest["bundles"][key]
    pinned = sha256_file(MODEL_FOLDER / "manifest.json")
    slug = f"{k['kernel_prefix']}-{key}".lower().replace("_", "-")
    dataset = f"{k['owner']}/{k['model_dataset']}"
    code_file = f"{slug}.ipynb"
    nb = kernel.notebook(key, config, dataset, k["competition"], pinned)
    meta = kernel.metadata(slug, k["owner"], f"{k['kernel_prefix']} {key}", code_file, dataset, k["competition"])
    out = KERNELS / key
    with atomic_dir(out) as tmp:
        (tmp / code_file).write_text(kernel.dumps(nb))
        (tmp / "kernel-metadata.json").write_text(kernel.dumps(meta))
    return BundleResult(bundle=key, kernel_id=meta["id"], folder=str(out),
                        files=[code_file, "kernel-metadata.json"], manifest_sha256=pinned,
                        config={kk: config.get(kk) for kk in ("kind", "submission", "model", "tta", "weights")})
