"""Stage `model_folder`: the shared, content-addressed model folder every kernel bundle reads.

For each bundle under `bundles:` it resolves what the bundle runs (its kind; for `predict`: the
submission's head and TTA shifts, and the backbone settings the extract stage
used; for `chain`: the base stage's stand-in, i.e. the protossm stage's fold models and TTA shifts,
the chain's model weights (`base.blend`, a variant's overrides), and, when
the SED weighs > 0, the sed stage's fold models, whose config.json carries the log-mel settings the
spectrogram stage made their input with, and the SED's threads and smoothing; for
`blend`: the `blends:` entry itself (its weights are resolved in the kernel against the shared
`blend:` section the kernel notebook carries, so `dvc exp run -S blend.weight=...` re-runs only the
bundle stages, not this one), each part a config of its own kind, plus a `sidecar` config (the sidecar
stage's head, models/heads/sidecar, and its TTA shifts; in real-data mode, where `backbone.name` is not
BirdNET and the sidecar reads a second extraction, also that extraction's settings, the `sidecar.extract`
knobs and the output read, and the converted BirdNET ONNX and labels from `runtime.cache_dir` as
models/sidecar_birdnet/, refused unless its sha256 is the one data/sidecar_features/meta.json records)
when the entry has a sidecar correction, and for
a ViT part (eos12, eos13) the vit stage's fold models, whose config.json carries the log-mel settings,
and its TTA shifts; a part a bundle cannot run, e.g. `base.source: file`, stops the stage naming it).
No post-processing knob is carried: the bundle stage writes them into each kernel notebook (``KNOBS``,
from the submissions' manifests), so `dvc exp run -S postprocess.prior_alpha=...` re-runs the bundle
stage, not this one, and the Kaggle dataset a user uploaded stays valid
and stores every file once under bundles/models/objects/<sha256>: the probed ONNX and its
descriptions, the head's checkpoints, the species table, the labelled chunks the site/hour prior is
fitted on (labelled rows only: real-data mode's held-out files are not among them), the library code
the kernel runs (birdclef_eos/bundle/infer.py and what it imports) and the vendored packages
(`kaggle.vendor`) and the pinned wheels of kaggle/wheels.txt (onnxruntime for Kaggle's Python and for
this one; fetched once into `runtime.cache_dir`). manifest.json maps logical paths to sha256s and pins
eos_fork.py, the entry a kernel or a fork imports; dataset-metadata.json, written only when
`kaggle.owner` is set, is what `kaggle datasets create -p bundles/models` reads. Upload the
folder as one Kaggle dataset (README: Kaggle kernels).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from birdclef_eos.backbone import birdnet
from birdclef_eos.bundle import folder, kernel, wheels
from birdclef_eos.bundle.config import KaggleParams
from birdclef_eos.bundle.infer import CHAIN_PARTS, KINDS
from birdclef_eos.io.files import atomic_dir, read_json, sha256_file
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.scoring.blend import positive_weights
from stages.paths import (BACKBONE_JSON, BLOCKS_JSON, CHAIN_MODELS, HEADS, INDEX, MODEL_FOLDER, PROBED_ONNX, ROOT,
                          SIDECAR_FEATURES, VIT_MODELS)

PARAMS = ("bundles", "kaggle", "submissions", "backbone.threads", "backbone.batch_size",
          "backbone.chunk_mapping", "backbone.frontend", "dataset.sample_rate", "extract.batch_windows",
          "extract.on_bad_audio", "base.source", "base.blend", "base.variants",
          "base.protossm.tta", "base.protossm.threads", "base.sed.threads", "base.sed.smooth_sigma", "blends",
          "backbone.name", "backbone.birdnet", "sidecar.head.tta", "sidecar.extract", "vit.sizes", "vit.tta", "vit.threads")
SIDECAR = "sidecar"               # the sidecar stage's head folder and submission (models/heads/sidecar, submissions/sidecar)
SIDECAR_BACKBONE = "birdnet_v24"  # the sidecar's backbone: when the main backbone is another, the bundle carries it
SIDECAR_ONNX_FOLDER = "models/sidecar_birdnet"  # real-data mode: the converted BirdNET ONNX and its labels
SIDECAR_OUTPUT = "embedding"      # BirdNET's output the sidecar head reads (stages/sidecar_features.py NAME)
WHEELS_FILE = ROOT / "kaggle" / "wheels.txt"  # what Kaggle's image (kaggle/image.txt) lacks, pinned
SHARED_FILES = {"probed_onnx": "models/backbone_probed.onnx", "backbone_json": "models/backbone.json",
                "blocks_json": "models/blocks.json", "species": "index/species.csv",
                "prior_chunks": "index/prior_chunks.csv"}


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
    wheels: list[str]
    manifest_sha256: str


def folder_files(folder: Path, logical: str, stage: str) -> dict[str, Path]:
    if not (folder / "config.json").exists():
        raise ModelFolderError(f"{folder}/config.json: not found; run {stage} first")
    return {f"{logical}/{p.name}": p for p in sorted(folder.glob("*")) if p.is_file()}


def backbone_settings(params: dict) -> dict:
    b, x = params["backbone"], params["extract"]
    return {"threads": b["threads"], "batch_size": b["batch_size"], "chunk_mapping": b["chunk_mapping"],
            "frontend": b["frontend"], "sample_rate": params["dataset"]["sample_rate"],
            "batch_windows": x["batch_windows"], "on_bad_audio": x["on_bad_audio"]}


def kind_of(part: str, params: dict) -> str | None:
    """The bundle kind that rebuilds submission ``part`` (None: no kind can)."""
    if part in params["submissions"]:
        return "predict"
    if part == "base" or part in params["base"]["variants"]:
        return "chain"
    if part in params["blends"]:
        return "blend"
    if part == SIDECAR:
        return "sidecar"
    if part.startswith("vit") and part[3:] in params["vit"]["sizes"]:  # the vit stage's submissions vit<size>
        return "vit"
    return None


def sidecar_extraction(params: dict, where: str, cache: Path) -> tuple[dict, dict[str, Path]]:
    """Real-data mode's sidecar: (the settings of its second extraction, {logical path: file} of the
    converted BirdNET ONNX and its labels). The ONNX is the one the sidecar_features stage ran (the
    sha256 its meta.json records), found in the conversion cache under ``cache`` (`runtime.cache_dir`) where
    birdclef_eos/backbone/birdnet.py `prepare` put it; the settings are the `sidecar.extract` knobs
    that stage ran with (its `open_birdnet` and `forward`), and the output the sidecar head reads."""
    meta_path = SIDECAR_FEATURES / "meta.json"
    if not meta_path.is_file():
        raise ModelFolderError(f"params.yaml: {where}: {meta_path} not found; run sidecar_features first "
                               "(real-data mode: the sidecar reads BirdNET's own extraction)")
    meta = read_json(meta_path, "written by the sidecar_features stage")
    if meta.get("mode") != "extract":
        raise ModelFolderError(f"{meta_path}: mode {meta.get('mode')!r}, not 'extract': it was written in the default "
                               f"mode (backbone.name: {SIDECAR_BACKBONE}) but backbone.name is now "
                               f"{params['backbone']['name']!r}; re-run sidecar_features (and sidecar)")
    x = params["sidecar"]["extract"]
    if meta.get("chunk_mapping") != x["chunk_mapping"]:
        raise ModelFolderError(f"{meta_path}: chunk_mapping {meta.get('chunk_mapping')!r} is not sidecar.extract."
                               f"chunk_mapping {x['chunk_mapping']!r}; re-run sidecar_features (and sidecar)")
    bn = params["backbone"]["birdnet"]
    converted = cache / "birdnet" / birdnet.conversion_key(bn)
    onnx, labels = converted / "backbone.onnx", converted / Path(bn["labels_member"]).name
    for path in (onnx, labels):
        if not path.is_file():
            raise ModelFolderError(f"{path}: not found (the converted BirdNET the bundle carries, from "
                                   "runtime.cache_dir and backbone.birdnet); run sidecar_features, which converts it")
    found = sha256_file(onnx)
    if found != meta.get("onnx_sha256"):
        raise ModelFolderError(f"{onnx}: sha256 {found} is not the ONNX {meta_path} was extracted with "
                               f"({meta.get('onnx_sha256')}); re-run sidecar_features (and sidecar)")
    settings = {"backbone": SIDECAR_BACKBONE, "output": SIDECAR_OUTPUT, "onnx_sha256": found,
                "conversion_key": meta.get("conversion_key"), "threads": x["threads"], "batch_size": x["batch_size"],
                "chunk_mapping": x["chunk_mapping"], "frontend": x["frontend"], "batch_windows": x["batch_windows"],
                "sample_rate": params["dataset"]["sample_rate"]}
    return settings, {f"{SIDECAR_ONNX_FOLDER}/backbone.onnx": onnx, f"{SIDECAR_ONNX_FOLDER}/labels.txt": labels}


def part_config(name: str, part: str, params: dict, where: str, cache: Path) -> tuple[dict, dict[str, Path]]:
    """(the inference config of submission ``part``, {logical path: file} it reads besides the shared
    ones); ``where`` names the params.yaml entry asking for it, for the errors; ``cache`` is the
    stage's `runtime.cache_dir` (``~`` expanded), where real-data mode's converted BirdNET lies."""
    kind = kind_of(part, params)
    if kind is None:
        raise ModelFolderError(f"params.yaml: {where} '{part}' is not a submission a bundle can rebuild (kinds "
                               f"{sorted(KINDS)}: `submissions:`, base and `base.variants:`, `blends:`, sidecar, vit<size>)")
    common = {"name": part, "kind": kind, "submission": part, "backbone": backbone_settings(params),
              "files": dict(SHARED_FILES)}
    if kind == "predict":
        sub = params["submissions"][part]
        files = folder_files(HEADS / sub["model"], f"models/heads/{sub['model']}", f"train@{sub['model']}")
        common["files"]["head"] = f"models/heads/{sub['model']}"
        return {**common, "model": sub["model"], "tta": [float(s) for s in sub["tta"]]}, files
    if kind == "chain":
        b = params["base"]
        if b["source"] != "stages":
            raise ModelFolderError(f"params.yaml: {where} '{part}': base.source is {b['source']!r} (the real chain's "
                                   "file); a bundle rebuilds only the stand-in chain (base.source: stages)")
        over = {} if part == "base" else b["variants"][part]
        weights = positive_weights({**b["blend"], **over.get("blend", {})})
        lacking = sorted(set(weights) - set(CHAIN_PARTS))
        if lacking:
            raise ModelFolderError(f"params.yaml: {where} '{part}': the chain's blend weighs {lacking} > 0 "
                                   f"(base.blend / base.variants.{part}.blend); a bundle runs only {sorted(CHAIN_PARTS)}: "
                                   "set that weight to 0 or drop the bundle")
        files = {}
        for model in weights:
            files.update(folder_files(CHAIN_MODELS / model, f"models/chain/{model}", model))
            common["files"][model] = f"models/chain/{model}"
        if "protossm" in weights and read_json(CHAIN_MODELS / "protossm" / "config.json")["config"]["mix_logits"]:
            # the kernel would stop on it only in the scoring run; refused here, where it can be fixed
            raise ModelFolderError(f"params.yaml: {where} '{part}': {CHAIN_MODELS}/protossm was trained with "
                                   "base.protossm.mix_logits: true, and a bundle does not carry the competition "
                                   "logit mapping it mixes: set it to false (and re-run protossm) or drop the bundle")
        p, sed = b["protossm"], b["sed"]
        # the SED's log-mel settings travel in its config.json (the spectrogram stage's spec.json, copied by
        # sed); its knobs only where it weighs, so a chain without it does not change with them
        own = {"sed": {"threads": sed["threads"], "smooth_sigma": float(sed["smooth_sigma"])}} if "sed" in weights else {}
        return {**common, "model": "+".join(weights), "weights": weights,
                # the shifts protossm applied to test (base.protossm.tta: oof chooses them on the OOF)
                "protossm": {"tta": [float(s) for s in read_json(CHAIN_MODELS / "protossm" / "config.json")["tta"]],
                             "threads": p["threads"]}, **own}, files
    if kind == "sidecar":
        extra, files = {}, {}
        if params["backbone"]["name"] != SIDECAR_BACKBONE:  # real-data mode: the second, BirdNET extraction
            extra["extraction"], files = sidecar_extraction(params, f"{where} '{part}'", cache)
            common["files"]["sidecar_backbone"] = SIDECAR_ONNX_FOLDER
        files.update(folder_files(HEADS / SIDECAR, f"models/heads/{SIDECAR}", SIDECAR))
        common["files"]["head"] = f"models/heads/{SIDECAR}"
        return {**common, "model": SIDECAR, "tta": [float(s) for s in params["sidecar"]["head"]["tta"]], **extra}, files
    if kind == "vit":
        key = part[3:]
        files = folder_files(VIT_MODELS / key, f"models/vit/{key}", f"vit@{key}")
        common["files"]["vit"] = f"models/vit/{key}"
        v = params["vit"]
        return {**common, "model": f"vit@{key}", "vit": {"tta": [float(s) for s in v["tta"]], "threads": v["threads"]}}, files
    entry = params["blends"][part]
    parts, files = {}, {}
    for sub_part in entry["parts"]:
        parts[sub_part], own = part_config(name, sub_part, params, f"blends.{part}.parts:", cache)
        files.update(own)
    extra = {}
    if entry.get("sidecar"):
        side = entry["sidecar"]["submission"]
        if kind_of(side, params) != "sidecar":
            raise ModelFolderError(f"params.yaml: {where} '{part}': blends.{part}.sidecar.submission '{side}' is not "
                                   f"the sidecar stage's submission '{SIDECAR}', which a bundle cannot rebuild")
        extra["sidecar"], own = part_config(name, side, params, f"blends.{part}.sidecar.submission", cache)
        files.update(own)
    return {**common, "model": "+".join(c["model"] for c in [*parts.values(), *extra.values()]), "entry": entry,
            "parts": parts, **extra}, files


def bundle_config(name: str, entry: dict, params: dict, cache: Path) -> tuple[dict, dict[str, Path]]:
    """(the bundle's inference config, {logical path: file} it reads besides the shared ones); ``cache``:
    the stage's `runtime.cache_dir` (``~`` expanded)."""
    if entry["kind"] not in KINDS:
        raise ModelFolderError(f"params.yaml: bundles.{name}.kind '{entry['kind']}' is not one of {sorted(KINDS)}")
    kind = kind_of(entry["submission"], params)
    if kind is None:
        raise ModelFolderError(f"params.yaml: bundles.{name}.submission '{entry['submission']}' is not under "
                               f"`submissions:` ({sorted(params['submissions'])}), base or `base.variants:`, "
                               f"or `blends:` ({sorted(params['blends'])})")
    if kind != entry["kind"]:
        raise ModelFolderError(f"params.yaml: bundles.{name}: submission '{entry['submission']}' is made by kind "
                               f"'{kind}', not '{entry['kind']}'")
    cfg, files = part_config(name, entry["submission"], params, f"bundles.{name}.submission", cache)
    return {**cfg, "name": name}, files


def own_folders(cfg: dict) -> set[str]:
    """The model folders (logical paths) a bundle config reads, its parts' included."""
    own = {v for k, v in cfg["files"].items() if k not in SHARED_FILES}
    for part in [*cfg.get("parts", {}).values(), *([cfg["sidecar"]] if cfg.get("sidecar") else [])]:
        own |= own_folders(part)
    return own


def run(params: dict, key: str | None = None) -> ModelFolderResult:
    k = KaggleParams.model_validate(params["kaggle"])  # typed once (birdclef_eos/bundle/config.py)
    runtime = RuntimeParams.model_validate(params["runtime"])  # typed once (birdclef_eos/io/runtime_config.py)
    cache = Path(os.path.expanduser(runtime.cache_dir))
    bundles = params["bundles"]
    if not bundles:
        raise ModelFolderError("params.yaml: `bundles:` is empty; name at least one (e.g. v6: {kind: predict, submission: v6})")
    configs, files = {}, {}
    for name, entry in bundles.items():
        configs[name], own = bundle_config(name, entry, params, cache)
        files.update(own)
    code = {p.relative_to(ROOT).as_posix(): p
            for p in folder.code_closure(ROOT / "birdclef_eos" / "bundle" / "infer.py", ROOT / "birdclef_eos")}
    vendor = folder.vendor_files(k.vendor, k.vendor_exclude)
    carried = {w.name: w for w in (wheels.fetch(pin, cache, download=False) for pin in wheels.read(WHEELS_FILE))}
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    labelled = chunks.loc[chunks["split"] == "labelled", ["row_id", "split", "site", "hour", "labels"]]
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(MODEL_FOLDER) as out:
        prior_chunks = Path(tmp) / "prior_chunks.csv"
        labelled.to_csv(prior_chunks, index=False)
        paths = {"probed_onnx": PROBED_ONNX, "backbone_json": BACKBONE_JSON, "blocks_json": BLOCKS_JSON,
                 "species": INDEX / "species.csv", "prior_chunks": prior_chunks}
        files.update({SHARED_FILES[k]: path for k, path in paths.items()})
        manifest = folder.build(out, files, code, vendor, configs, kernel.ENTRY, carried)
        kernel.check_slug(k.model_dataset, "kaggle.model_dataset")
        if k.owner is not None:  # null: no upload metadata (set kaggle.owner to your Kaggle user name)
            (out / "dataset-metadata.json").write_text(kernel.dumps(kernel.dataset_metadata(k.owner, k.model_dataset)))
        sizes = {p.name: p.stat().st_size for p in (out / "objects").iterdir()}
    shared = sum(sizes[sha] for sha in {**manifest["code"], **manifest["vendor"], **manifest["wheels"]}.values())
    per_bundle = sum(sizes[manifest["files"][lp]] for c in configs.values()
                     for lp in manifest["files"] if lp in SHARED_FILES.values() or
                     any(lp.startswith(f + "/") for f in own_folders(c)))
    return ModelFolderResult(
        bundles={n: {k: c[k] for k in ("kind", "submission", "model")} for n, c in configs.items()},
        objects=len(sizes), megabytes=round(sum(sizes.values()) / 2**20, 1),
        shared_megabytes=round((per_bundle + shared * len(configs)) / 2**20, 1),
        code_files=len(manifest["code"]), vendor_files=len(manifest["vendor"]), wheels=sorted(manifest["wheels"]),
        manifest_sha256=sha256_file(MODEL_FOLDER / "manifest.json"))
