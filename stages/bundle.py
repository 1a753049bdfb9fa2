"""Stage `bundle`: the Kaggle kernel of every bundle under `bundles:`, generated from code.

Writes bundles/kernels/<name>/<slug>.ipynb per bundle (the inference notebook: birdclef_eos/bundle/kernel.py)
and, when `kaggle.owner` is set, kernel-metadata.json (`kaggle kernels push -p bundles/kernels/<name>`).
`kaggle.owner: null` (the default) builds and tests every kernel without Kaggle ids, so the default
params run anywhere; a placeholder (your-kaggle-username) or a name Kaggle would not accept is refused,
naming the knob, by the params check and again here. Every value the notebook receives is validated
(Kaggle's slug and user-name rules) and written as a literal, never spliced into code. The notebook pins the
sha256 of the model folder's manifest (the model_folder stage), so a kernel run against another
version of the model dataset stops before predicting. The kernels are DVC outputs: a re-run writes a new
version in the cache and never overwrites the bytes a Kaggle score belongs to (`git checkout <tag>
&& dvc checkout` brings them back).

What a kernel notebook carries beside the model folder is what cheap experiments change, read from
the manifests of the submissions it rebuilds (dvc.yaml lists them as deps; `python -m stages.layout
--write` derives the list from `bundles:` and `blends:`): the shared `blend:` section (weight, space,
taxonomy; ``BLEND``) a blend submission was made with, with which the kernel resolves the entry's weights
(birdclef_eos/bundle/infer.py, with the blend stage's ``resolve_blend``), and the post-processing knobs
of every predict and chain part (``KNOBS``, {submission: knobs}). So `dvc exp run -S blend.weight=0.08`
or `-S postprocess.prior_alpha=0.4` re-runs this stage and not model_folder. One stage for every
bundle, not one per bundle: each stage costs DVC a rewrite of dvc.lock, and those experiments rebuild
every kernel anyway. This stage is cheap: no notebook (``NOTEBOOK = False``: stages/notebook.py calls
``run`` and prints its result), well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from birdclef_eos.bundle import kernel
from birdclef_eos.bundle.config import Bundle, KaggleParams
from birdclef_eos.io.files import atomic_dir, read_json, sha256_file
from stages.paths import KERNELS, MODEL_FOLDER, SUBMISSIONS

PARAMS = ("kaggle", "bundles")
NOTEBOOK = False  # re-runs on every `blend.*` and post-processing change: a papermill notebook would cost 5x the work
# the bundle kinds whose submissions are post-processed: their knobs go into the kernel notebook (KNOBS);
# birdclef_eos/bundle/infer.py POSTPROCESSED hands them to the same kinds (a test keeps the two equal)
POSTPROCESSED = ("predict", "chain")


class BundleStageError(ValueError):
    pass


@dataclass
class BundleResult:
    """What the stage prints: the kernel's id and files, the manifest it pins, the bundle's config
    (``weights``: a blend bundle's weights as the kernel resolves them with its submission's `blend:`)."""
    bundle: str
    kernel_id: str
    folder: str
    files: list[str]
    manifest_sha256: str
    config: dict

    def __str__(self) -> str:
        about = ", ".join(f"{k} {v}" for k, v in self.config.items() if v is not None)
        return (f"{self.kernel_id}: {self.files} in {self.folder}; pins manifest {self.manifest_sha256[:16]}; "
                f"{about}")


def blend_weights(config: dict, shared: dict) -> dict | None:
    """{part: weight} of a blend bundle (nested blends as {part: {...}}), resolved as the kernel will
    resolve them; None for the other kinds. Raises the blend stage's error on a bad entry."""
    if config["kind"] != "blend":
        return None
    from birdclef_eos.scoring.blend import resolve_blend  # only blend bundles pay for scipy's import

    weights = resolve_blend(config["submission"], config["entry"], shared).weights
    return {p: blend_weights(c, shared) or round(weights[p], 12) for p, c in config["parts"].items()}


def knobs_of(config: dict) -> dict:
    """{submission: post-processing knobs} of every part of ``config`` (itself included, depth first)
    whose kind post-processes (``POSTPROCESSED``), as the submission's manifest records them: the knobs
    it was made with."""
    out = {}
    if config["kind"] in POSTPROCESSED:
        path = SUBMISSIONS / config["submission"] / "manifest.json"
        made = read_json(path, "written by the stage that made the submission")
        if not isinstance(made.get("postprocess"), dict):
            raise BundleStageError(f"{path}: no `postprocess` knobs; re-run the stage that made '{config['submission']}'")
        out[config["submission"]] = made["postprocess"]
    for part in [*config.get("parts", {}).values(), *([config["sidecar"]] if config.get("sidecar") else [])]:
        out.update(knobs_of(part))
    return out


def kaggle_of(params: dict) -> KaggleParams:
    """`kaggle` typed (birdclef_eos/bundle/config.py: Kaggle's slug and user-name rules); a bad value
    is this stage's error, naming the knob, before anything is written."""
    try:
        return KaggleParams.model_validate(params["kaggle"])
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BundleStageError(f"params.yaml: kaggle.{err['loc'][0]} = {err['input']!r}: {err['msg']}") from exc


def build(params: dict, key: str, kernels: Path = KERNELS) -> BundleResult:
    """Write the kernel of bundle ``key`` to ``kernels``/<key> (atomically)."""
    if key not in params["bundles"]:
        raise BundleStageError(f"params.yaml: no bundle '{key}' under `bundles:` ({sorted(params['bundles'])})")
    k = kaggle_of(params)
    manifest = read_json(MODEL_FOLDER / "manifest.json", "run the model_folder stage")
    if key not in manifest["bundles"]:
        raise BundleStageError(f"{MODEL_FOLDER}/manifest.json: no bundle '{key}'; re-run the model_folder stage")
    config = manifest["bundles"][key]
    pinned = sha256_file(MODEL_FOLDER / "manifest.json")
    try:  # every value that reaches the notebook or its metadata, against Kaggle's rules
        slug = kernel.kernel_slug(k.kernel_prefix, key)
        kernel.check_slug(k.model_dataset, "kaggle.model_dataset")
        kernel.check_slug(k.competition, "kaggle.competition")
        if k.owner is not None:
            kernel.check_user(k.owner, "kaggle.owner")
    except kernel.KernelError as exc:
        raise BundleStageError(f"params.yaml: {exc}") from exc
    dataset = f"{k.owner}/{k.model_dataset}" if k.owner is not None else k.model_dataset
    code_file = f"{slug}.ipynb"
    shared = None
    if config["kind"] == "blend":
        made = read_json(SUBMISSIONS / config["submission"] / "manifest.json", "run the blend stage")
        if "shared" not in made:
            raise BundleStageError(f"{SUBMISSIONS}/{config['submission']}/manifest.json: no `shared` blend section; "
                                   f"re-run the blend stage")
        shared = made["shared"]
    weights = blend_weights(config, shared) if shared is not None else None
    nb = kernel.notebook(key, config, dataset, k.competition, pinned, shared,
                         ", ".join(f"{p} {w}" for p, w in (weights or {}).items()), knobs_of(config) or None)
    meta = (kernel.metadata(slug, k.owner, f"{k.kernel_prefix} {key}", code_file, dataset, k.competition)
            if k.owner is not None else None)
    out = kernels / key
    with atomic_dir(out) as tmp:
        (tmp / code_file).write_text(kernel.dumps(nb))
        if meta is not None:
            (tmp / "kernel-metadata.json").write_text(kernel.dumps(meta))
    return BundleResult(bundle=key, kernel_id=meta["id"] if meta else f"(kaggle.owner not set)/{slug}", folder=str(KERNELS / key),
                        files=[code_file] + (["kernel-metadata.json"] if meta else []), manifest_sha256=pinned,
                        config={**{kk: config.get(kk) for kk in ("kind", "submission", "model", "tta")},
                                "weights": weights if weights is not None else config.get("weights")})


@dataclass
class BundlesResult:
    """What the stage prints: one line per bundle built."""
    bundles: list[BundleResult]

    def __str__(self) -> str:
        return "\n".join(str(b) for b in self.bundles)


def run(params: dict, key: str | None = None) -> BundlesResult:
    """Every bundle's kernel, written together to bundles/kernels/ (atomically)."""
    bundles = {n: Bundle.model_validate(e) for n, e in params["bundles"].items()}  # typed once (bundle/config.py)
    if not bundles:
        raise BundleStageError("params.yaml: `bundles:` is empty; name at least one (e.g. v6: {kind: predict, submission: v6})")
    with atomic_dir(KERNELS) as tmp:
        return BundlesResult([build(params, name, tmp) for name in bundles])
