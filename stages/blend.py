"""Stage `blend`: every entry of `blends:` in one stage, each written to
submissions/<name>/ (submission.csv + manifest.json) like any submission.

Reads the parts' submissions (submissions/<part>/submission.csv: the base chain, the heads' v6 and
v6_residual, and blends computed earlier in the same run) and data/index/species.csv (genus and
class for the taxonomy smoothing). The shared knobs live in `blend:` (the head's weight, the space,
the taxonomy strengths); an entry refers to the shared weight by name (`weight`) and gives one part
the `rest`; an entry with a `sidecar` then gets the sidecar's masked rank correction (eos10). Blending is milliseconds of arithmetic, so one stage computes every blend: `dvc exp run
-S blend.weight=0.08` re-runs this stage, the leaderboard and what reads them, nothing upstream.
Writes build/metrics/blend/blend.json: each blend's resolved weights, space, taxonomy, sha256 and each
part's effective share (scoring/blend.py: its share of the per-column spread of the weighted parts,
median over columns), because parts on different scales do not carry their nominal weights: the
base is rank-valued (every column up to 1.0), a head a probability (columns of a few hundredths),
so in `prob` space a 7 % head moves the blend by a fraction of a percent. That is why the space is
chosen on the OOF (`blend.space: oof`, birdclef_eos/scoring/space.py): the base's and its reference
head's OOF as the base stage scored them (predictions/oof/base/), blended at `blend.weight` in each
space and smoothed by `blend.taxonomy`; the higher macro-AUC wins (a tie: prob). blend.json records
the comparison (`space_on_oof`, rank minus prob with a paired interval over files, `blend.bootstrap`
draws) and `shared.space` the space used; a manifest carries the resolved space, so a Kaggle kernel
needs no OOF.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import atomic_dir, read_json, sha256_file, write_json
from birdclef_eos.report.pipelines_config import Pipelines
from birdclef_eos.report.pipelines import blend_drawing, plot_pipelines, standalone_steps
from birdclef_eos.scoring import submission
from birdclef_eos.scoring.blend import Blend, BlendError, align, blend, order_blends, resolve_blend
from birdclef_eos.scoring.blend_config import BlendEntry, BlendShared, dump
from birdclef_eos.scoring.shares import effective_shares
from birdclef_eos.scoring.space import compare_spaces_on_oof
from birdclef_eos.scoring.postprocess import resolve_knobs, taxonomy_smooth
from birdclef_eos.scoring.postprocess_config import Postprocess, as_given
from birdclef_eos.scoring.submission_config import Submission
from birdclef_eos.scoring import sidecar as sidecar_lib
from stages.paths import BASE_OOF, BLEND_METRICS, HIDDEN, INDEX, PIPELINES_FIGURE, SUBMISSIONS, TRAIN_METRICS

PARAMS = ("blend", "blends", "figures.pipelines", "submissions", "postprocess", "backbone.name")
# every experiment re-runs this stage and its work is about a second: a papermill kernel would cost
# more than the work. What a notebook would show is in files a person reads: each blend's weights,
# space and shares in build/metrics/blend/blend.json (published to metrics/blend/), Figure 3 in
# build/figures/pipelines.png (figures/); the run prints the weights (``BlendResult.__str__``).
NOTEBOOK = False


@dataclass
class BlendResult:
    """What the stage prints (``__str__``). blends: name -> {weights, space, taxonomy, rows, labels,
    submission_sha256} (as build/metrics/blend/blend.json); seconds: wall time. Figure 3
    (build/figures/pipelines.png): left / right, its box labels top to bottom (pipelines.json);
    weights: the drawn blend's part weights."""
    blends: dict[str, dict]
    seconds: float
    left: list[str]
    right: list[str]
    weights: dict[str, float]

    def __str__(self) -> str:
        rows = "; ".join(f"{n}: {', '.join(f'{p} {w:.4g}' for p, w in b['weights'].items())} ({b['space']}"
                         f"{', taxonomy' if b['taxonomy'] else ''})" for n, b in self.blends.items())
        return (f"{len(self.blends)} blends in {self.seconds:.1f} s to {SUBMISSIONS}/<name>/ and "
                f"{BLEND_METRICS}/blend.json: {rows}; Figure 3 ({PIPELINES_FIGURE}) draws {self.weights}")


def spec_of(name: str, entry: dict, shared: dict) -> Blend:
    """The entry resolved against the shared `blend:` section."""
    return resolve_blend(name, entry, shared)


def read_part(name: str) -> pd.DataFrame:
    path = SUBMISSIONS / name / "submission.csv"
    if not path.exists():
        raise BlendError(f"{path}: missing; the stage that writes submission '{name}' has not run "
                         f"(dvc repro builds it before the blend)")
    return submission.read(path)


def head_of(model: str) -> dict:
    """The head's variant, type, blocks and folds from its metrics.json (written by train/student)."""
    path = TRAIN_METRICS / model / "metrics.json"
    m = read_json(path, f"run the stage that trains {model}")
    return {"variant": model, "head": m.get("head", model), "blocks": m["blocks"],
            "n_folds": len(m.get("folds", [])) or "?"}


def figure3(cfg: Pipelines, params: dict, blends: dict[str, dict], shared: dict) -> tuple[list[str], list[str], dict]:
    """Figure 3: the standalone `figures.pipelines.standalone` (left) and the blend
    `figures.pipelines.blend` (right), drawn from the params in force, so `-S blend.weight=...` redraws it.
    ``blends`` and ``shared``: the entries and the `blend:` knobs (its space chosen) as written."""
    name, blend_name = cfg.standalone, cfg.blend
    subs = {n: Submission.model_validate(e) for n, e in params["submissions"].items()}  # typed once
    if name not in subs:
        raise BlendError(f"figures.pipelines.standalone = {name!r}: not a key of submissions ({' | '.join(subs)})")
    if blend_name not in blends:
        raise BlendError(f"figures.pipelines.blend = {blend_name!r}: not a key of blends ({' | '.join(blends)})")
    entry = subs[name]
    defaults = Postprocess.model_validate(params["postprocess"]).model_dump()
    knobs = resolve_knobs(defaults, as_given(entry.postprocess), name).__dict__
    tta = entry.tta if entry.tta is not None else [0.0]
    left = standalone_steps(name, params["backbone"]["name"], head_of(entry.model), tta, knobs)
    describe = {p: f"{subs[p].model} head" for p in blends[blend_name]["parts"] if p in subs}
    right = blend_drawing(blend_name, blends[blend_name], shared, describe)
    plot_pipelines(f"Standalone {name}", left, f"Blend {blend_name}", right, PIPELINES_FIGURE)
    weights = {p: round(w, 6) for p, w, _ in right.parts}
    return left, right.steps, weights


def space_on_oof(shared: BlendShared, species: pd.DataFrame) -> dict:
    """`compare_spaces` at `blend.weight` on the base stage's OOF, smoothed by `blend.taxonomy`."""
    tax = shared.taxonomy
    smooth = lambda P: taxonomy_smooth(P, species["genus"].to_numpy(), species["class_name"].to_numpy(),  # noqa: E731
                                       tax.genus, tax.class_)
    labels = species["primary_label"].astype(str).tolist()
    result, reference = compare_spaces_on_oof(BASE_OOF, INDEX / "chunks.csv", labels, shared.weight, smooth,
                                              shared.bootstrap, shared.seed, shared.confidence)
    return {"reference": reference, **result}


def run(params: dict, key: str | None = None) -> BlendResult:
    started = time.perf_counter()
    # typed once (birdclef_eos/scoring/blend_config.py); blend.py, sidecar.py and the manifests take
    # the mappings as written (``dump``), as a Kaggle kernel reads them back
    typed = BlendShared.model_validate(params["blend"])
    entries = {n: BlendEntry.model_validate(e) for n, e in params["blends"].items()}
    written = {n: dump(e) for n, e in entries.items()}
    shared = dump(typed)
    species = species_table(INDEX)
    on_oof = space_on_oof(typed, species) if typed.space == "oof" else None
    if on_oof is not None:  # every blend, its manifest and a kernel see the space chosen
        shared = {**shared, "space": on_oof["chosen"]}
    sample_path = HIDDEN / "sample_submission.csv"
    sample = pd.read_csv(sample_path, dtype={"row_id": str}) if sample_path.exists() else None
    parts = {p for e in entries.values() for p in [*e.parts, *([e.sidecar.submission] if e.sidecar else [])]
             if p not in entries}
    frames = {p: read_part(p) for p in sorted(parts)}
    shas = {p: sha256_file(SUBMISSIONS / p / "submission.csv") for p in frames}
    out = {}
    for name in order_blends(written, set(frames)):
        spec = spec_of(name, written[name], shared)
        _, _, arrays = align({p: frames[p] for p in spec.weights})
        shares = effective_shares(arrays, spec.weights, spec.space)
        sub = blend(frames, spec, species)
        side = written[name].get("sidecar")
        if side:
            sub = sidecar_lib.apply(sub, frames[entries[name].sidecar.submission], side)
        if sample is not None:
            sub = sub.set_index("row_id").reindex(sample["row_id"]).reset_index()
            submission.validate(sub, sample, name=f"blend '{name}'")
        frames[name] = sub
        manifest = {"submission": name, "kind": "blend", "entry": written[name], "sidecar": side or None,
                    # the `blend:` knobs the entry was resolved with (its space chosen): a Kaggle kernel carries them
                    "shared": {k: shared[k] for k in ("weight", "space", "taxonomy")},
                    "weights": spec.weights, "space": spec.space,
                    "taxonomy": None if spec.taxonomy is None else {"genus": spec.taxonomy[0], "class": spec.taxonomy[1]},
                    "parts": {p: shas[p] for p in spec.weights},  # sha256 of each part's submission.csv
                    "rows": len(sub), "labels": sub.shape[1] - 1}
        manifest = submission.write_folder(SUBMISSIONS / name, sub, manifest)
        shas[name] = manifest["submission_sha256"]
        out[name] = {k: manifest[k] for k in ("weights", "space", "taxonomy", "rows", "labels", "submission_sha256")}
        out[name]["effective_share"] = shares
    with atomic_dir(BLEND_METRICS) as tmp:
        write_json(tmp / "blend.json", {"shared": shared, "space_on_oof": on_oof, "blends": out})
    left, right, weights = figure3(Pipelines.model_validate(params["figures"]["pipelines"]), params, written, shared)
    write_json(BLEND_METRICS / "pipelines.json", {"standalone": left, "blend": right, "weights": weights})
    return BlendResult(blends=out, seconds=time.perf_counter() - started, left=left, right=right, weights=weights)
