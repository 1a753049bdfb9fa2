"""Stage `base`: the baseline chain's submission, its OOF, and the OOF against v6's head.

`base.source: stages` (default): reads the ProtoSSM and SED test predictions (predictions/chain/),
blends them in rank space with `base.blend` weights (ranks per class over ALL test rows,
birdclef_eos/chain/blend.py), then runs the chain's post-processing (`base.postprocess` over the
shared `postprocess` defaults: site/hour prior lambda 0.75, rank-aware p x file max^0.6, adaptive
neighbour smoothing 0.20 x (1 - max confidence); birdclef_eos/scoring/postprocess.py).
The OOF: the same blend and post-processing on the labelled soundscape chunks (ProtoSSM's OOF, and
the SED's when it was trained in folds; else ProtoSSM's alone), with the site/hour prior of each fold
fitted without that fold's files; scored and compared with `base.reference`'s OOF (v6's head, `attn`)
by a paired bootstrap over files (reference = base: the interval is base minus head), against the
head's raw OOF and, like for like, against the head's OOF under the same fold-wise post-processing
as its submission (`same_postprocess`, which says which is stronger); `prior_form` scores both with
the prior's relative and absolute forms (the evidence `postprocess.prior_relative` is chosen on).
Both sides are read at the windows they submit with: ProtoSSM's OOF at the shifts the protossm stage
applied (`base.protossm.tta`, chosen on its OOF), the head's at `base.reference_tta` (v6's shifts: its
fold models on the labelled chunks of data/features_labelled, each chunk by the model that did not see
its file, averaged in `postprocess.tta_space`; shift 0 is the head's own oof.csv, and the refit of
shift 0 from the same fold models must match it, else an error).
`base.source: file`: takes `base.file`, a submission.csv the real chain produced, validated against
the sample submission (errors name the file, column and row) and recorded by sha256; no OOF.
`base.variants`: knob variants of the built chain (blend or post-processing overrides), each written
as its own submission (eos8's rank power 0.65, eos9's three-part anchor: README says what stands in
for what). Writes submissions/base/{submission.csv, manifest.json}, submissions/<variant>/,
build/metrics/base/metrics.json and predictions/oof/base/: base.csv and reference.csv, the two OOFs of
the like-for-like comparison as scored (what `blend.space: oof` and the ceiling choose a blend space
on), and parts.json saying what they are (`"oof": null` with the reason for `base.source: file`).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.chain.base_config import ChainParams
from birdclef_eos.data import features, folds
from birdclef_eos.data.species import species_table
from birdclef_eos.heads import models as heads
from birdclef_eos.io.files import atomic_dir, read_json, sha256_file, sha256_tree, write_json
from birdclef_eos.scoring import postprocess, submission
from birdclef_eos.scoring.blend import mix, positive_weights
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from birdclef_eos.scoring.postprocess_config import Postprocess, as_given
from stages.paths import (BASE_METRICS, BASE_OOF, CHAIN_MODELS, CHAIN_PREDICTIONS, FEATURES, FEATURES_LABELLED, HEADS, HIDDEN, INDEX,
                          OOF, SUBMISSIONS)

PARAMS = ("base.source", "base.file", "base.blend", "base.postprocess", "base.variants", "base.reference",
          "base.reference_tta", "base.bootstrap", "base.confidence", "base.seed", "postprocess", "train.n_folds",
          "train.fold_salt")
REFIT_TOLERANCE = 1e-4  # the head's fold models re-predicting its shift-0 OOF (oof.csv keeps 6 significant digits)
NAME = "base"


class BaseStageError(ValueError):
    pass


@dataclass
class BaseResult:
    """What the base notebook shows: metrics (build/metrics/base/metrics.json) and the manifest."""
    metrics: dict
    manifest: dict
    seconds: float


def submission_order(chunks: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """sample_submission.csv when the hidden folder has one; otherwise the index's test chunks."""
    path = HIDDEN / "sample_submission.csv"
    if path.exists():
        return pd.read_csv(path, dtype={"row_id": str})
    test = chunks[chunks["split"] == "test"]
    return pd.DataFrame({"row_id": test["row_id"].astype(str)}).assign(**{c: 0.0 for c in labels})


def read_predictions(path: Path, labels: list[str], row_ids: list[str]) -> np.ndarray:
    return read_oof(path, labels, row_ids, made_by=f"the stage that writes {path.parent}")


def chunk_rows(chunks: pd.DataFrame, row_ids: list[str]) -> pd.DataFrame:
    rows = chunks.set_index("row_id").loc[row_ids].reset_index()
    return rows.rename(columns={"soundscape_id": "file_id"})


def blend_sources(kind: str, weights: dict, labels: list[str], row_ids: list[str],
                  protossm_oof: str = "oof.csv") -> tuple[np.ndarray, dict]:
    """The rank blend of the models whose ``kind`` file exists (test: all must; oof: ProtoSSM must);
    ``protossm_oof``: which of predictions/oof/protossm/'s files (one of its TTA candidates')."""
    paths = {"protossm": (OOF / "protossm" / protossm_oof) if kind == "oof" else CHAIN_PREDICTIONS / "protossm" / "test.csv",
             "sed": CHAIN_PREDICTIONS / "sed" / ("oof.csv" if kind == "oof" else "test.csv")}
    used = {m: w for m, w in weights.items() if w > 0 and (kind == "test" or paths[m].exists() or m == "protossm")}
    preds = {m: read_predictions(paths[m], labels, row_ids) for m in used}
    return mix(preds, positive_weights(used), "rank"), used


def run(params: dict, key: str | None = None) -> BaseResult:
    started = time.perf_counter()
    # typed once (birdclef_eos/chain/base_config.py, scoring/postprocess_config.py); the stage is handed
    # its own knobs of `base`, not the chain's models
    b = ChainParams.pick(params["base"])
    defaults = Postprocess.model_validate(params["postprocess"]).model_dump()
    knobs = postprocess.resolve_knobs(defaults, as_given(b.postprocess), NAME)
    species = species_table(INDEX)
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str, "row_id": str})
    order = submission_order(chunks, labels)
    test_ids = order["row_id"].astype(str).tolist()
    metrics: dict = {"source": b.source, "postprocess": asdict(knobs)}
    if b.source != "stages" and b.variants:  # checked before anything is written
        name = next(iter(b.variants))
        raise BaseStageError(f"base.variants.{name}: a variant re-blends the stand-in's own models, and base.source "
                             f"is {b.source!r}: set base.variants: {{}} (and drop the blends that use them)")

    if b.source == "file":
        path = Path(b.file)
        if not path.exists():
            raise BaseStageError(f"base.file = {b.file!r}: no such file (base.source: file)")
        try:
            sub = pd.read_csv(path, dtype={"row_id": str})
        except Exception as exc:  # a file pandas cannot parse
            raise BaseStageError(f"{path}: not a readable CSV ({exc})") from exc
        submission.validate(sub, order, name=str(path))
        sub = sub.set_index("row_id").loc[test_ids].reset_index()
        inputs = {str(path): sha256_file(path)}
        metrics.update(oof_macro_auc=None, note="source: file - the real chain's output; no OOF here")
        oofs = None
    else:
        probs, used = blend_sources("test", b.blend, labels, test_ids)
        rows = chunk_rows(chunks, test_ids)
        prior = postprocess.fit_prior(chunks, labels) if knobs.prior_alpha else None
        probs = postprocess.postprocess(probs, rows, knobs, prior=prior, species=species)
        sub = submission.build(test_ids, probs, labels, order)
        inputs = sha256_tree([CHAIN_PREDICTIONS / m / "test.csv" for m in used] + [INDEX / "chunks.csv"])
        oof, oofs = oof_metrics(b, defaults, params, knobs, chunks, labels, species)
        metrics.update(blend=used, **oof)
    submission.validate(sub, order, name="submission 'base'")
    manifest = write_submission(NAME, sub, {"model": "baseline chain (stand-in)" if b.source == "stages" else "file",
                                            "source": b.source, "blend": b.blend, "postprocess": asdict(knobs),
                                            "rows": len(sub), "labels": len(labels), "sha256": inputs})
    metrics["submission_sha256"] = manifest["submission_sha256"]
    metrics["variants"] = {}
    for name, variant in b.variants.items():  # knob variants of the built chain (eos8, eos9's anchors)
        over = variant.model_dump(exclude_unset=True)  # as written: the manifest and metrics record it
        v_knobs = postprocess.resolve_knobs(defaults, {**as_given(b.postprocess), **over.get("postprocess", {})}, name)
        v_blend = {**b.blend, **over.get("blend", {})}
        v_probs, v_used = blend_sources("test", v_blend, labels, test_ids)
        v_probs = postprocess.postprocess(v_probs, rows, v_knobs, prior=postprocess.fit_prior(chunks, labels)
                                          if v_knobs.prior_alpha else None, species=species)
        v_sub = submission.build(test_ids, v_probs, labels, order)
        submission.validate(v_sub, order, name=f"submission '{name}'")
        m = write_submission(name, v_sub, {"model": f"baseline chain (stand-in), variant of {NAME}", "source": "stages",
                                           "variant_of": NAME, "overrides": over, "blend": v_blend,
                                           "postprocess": asdict(v_knobs), "rows": len(v_sub), "labels": len(labels),
                                           "sha256": inputs})
        metrics["variants"][name] = {"overrides": over, "submission_sha256": m["submission_sha256"]}
    with atomic_dir(BASE_METRICS) as out:
        write_json(out / "metrics.json", metrics)
    write_oofs(oofs, labels, metrics)
    return BaseResult(metrics=metrics, manifest=manifest, seconds=time.perf_counter() - started)


def write_submission(name: str, sub: pd.DataFrame, manifest: dict) -> dict:
    """submissions/<name>/{submission.csv, manifest.json}, atomically; returns the manifest."""
    manifest = {"submission": name, **manifest}
    with atomic_dir(SUBMISSIONS / name) as tmp:
        sub.to_csv(tmp / "submission.csv", index=False, float_format="%.6f")
        manifest["submission_sha256"] = sha256_file(tmp / "submission.csv")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return manifest


def write_oofs(oofs: dict | None, labels: list[str], metrics: dict) -> None:
    """predictions/oof/base/: base.csv and reference.csv (row_id + one column per label, 6 significant
    digits, as every OOF) and parts.json, atomically; parts.json alone, ``"oof": null``, without an OOF."""
    with atomic_dir(BASE_OOF) as out:
        if oofs is None:
            write_json(out / "parts.json", {"oof": None, "why": "base.source: file - the real chain's output has no OOF"})
            return
        for name in ("base", "reference"):
            frame = pd.DataFrame(oofs[name], columns=labels)
            frame.insert(0, "row_id", oofs["row_ids"])
            frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
        same = metrics["same_postprocess"]
        write_json(out / "parts.json", {
            "oof": {"base": "base.csv", "reference": "reference.csv"}, "reference": metrics["reference"],
            "base_tta": same["base_tta"], "reference_tta": same["reference_tta"]["shifts"],
            "postprocess": {"base": metrics["postprocess"], "reference": same["knobs"]},
            "note": "each post-processed fold-wise as its submission, the site/hour prior of a fold fitted without its files"})


def shifted_rows(windows: pd.DataFrame, row_ids: list[str], shift: float, where) -> np.ndarray:
    """Feature-row positions of the labelled chunks ``row_ids`` at ``shift`` (an error names the store)."""
    rows = windows[(windows["source"] == "soundscape") & (windows["split"] == "labelled")
                   & np.isclose(windows["shift_s"].astype(float), shift)]
    at = pd.Series(rows.index.to_numpy(), index=rows["row_id"].astype(str))
    missing = [r for r in row_ids if r not in at.index]
    if missing:
        fix = "extract.labelled_shifts (re-run extract_labelled)" if shift else "re-run extract"
        raise BaseStageError(f"{where}/windows.csv: {len(missing)} labelled chunks (first {missing[0]}) missing at shift "
                             f"{shift}: add it to {fix}")
    return at.loc[row_ids].to_numpy()


def head_oof_at(reference: str, shifts: list[float], row_ids: list[str], fold_of: np.ndarray, labels: list[str],
                space: str) -> tuple[np.ndarray, dict]:
    """The head's OOF averaged over ``shifts`` (``space``: prob | logit, as its submission averages
    them), each labelled chunk predicted by the fold model that did not see its file, and a record:
    the shifts, and how far the fold models' refit of shift 0 is from the head's oof.csv (the check
    that these models are the ones that wrote it)."""
    shift0 = read_oof(OOF / reference / "oof.csv", labels, row_ids, made_by=f"train@{reference}")
    record = {"shifts": [float(s) for s in shifts]}
    if [float(s) for s in shifts] == [0.0]:
        return shift0, record
    models, config = heads.load_variant(HEADS / reference)
    if config["labels"] != labels:
        raise BaseStageError(f"{HEADS / reference}/config.json: its labels are not data/index/species.csv's; re-run "
                             f"train@{reference}")
    if len(models) != len(np.unique(fold_of)):
        raise BaseStageError(f"{HEADS / reference}: {len(models)} fold models, train.n_folds says {len(np.unique(fold_of))}")

    def predict(folder, shift: float) -> np.ndarray:
        windows, arrays, _ = features.load(folder, names=config["tokens"])
        idx = shifted_rows(windows, row_ids, shift, folder)
        out = np.zeros((len(row_ids), len(labels)), dtype=np.float32)
        for k, model in enumerate(models):
            inside = fold_of == k
            out[inside] = heads.predict_proba([model], [np.asarray(arrays[n])[idx[inside]] for n in config["tokens"]])
        return out

    refit = predict(FEATURES, 0.0)
    record["refit_max_abs_diff"] = float(np.abs(refit - shift0).max())
    if record["refit_max_abs_diff"] > REFIT_TOLERANCE:
        raise BaseStageError(f"{HEADS / reference}: its fold models re-predict {OOF / reference}/oof.csv only within "
                             f"{record['refit_max_abs_diff']:.2g} (> {REFIT_TOLERANCE}): they are not the models that "
                             f"wrote it; re-run train@{reference}")
    per_shift = [shift0 if float(s) == 0.0 else predict(FEATURES_LABELLED, float(s)) for s in shifts]
    return postprocess.average_shifts(per_shift, space), record


def oof_metrics(b: ChainParams, defaults: dict, params: dict, knobs, chunks: pd.DataFrame, labels: list[str],
                species) -> tuple[dict, dict]:
    """Base OOF (blend + post-processing, the prior of each fold fitted without its files) against the
    reference head's OOF, paired bootstrap over files: against the head's raw OOF (what the head's
    training reports), and against the head's OOF under the same fold-wise post-processing as its
    submission (the shared `postprocess` knobs) at its submission's shifts (`base.reference_tta`),
    while ProtoSSM's OOF is at the shifts the protossm stage applied: the like-for-like comparison.
    ``prior_form``: both OOFs with the site/hour prior in the relative and in the absolute form, the
    rest unchanged (the evidence for `postprocess.prior_relative`). Returns (metrics, the two scored
    OOFs: {"row_ids", "base", "reference"})."""
    labelled = chunks[chunks["split"] == "labelled"].copy()
    row_ids = labelled["row_id"].astype(str).tolist()
    blended, used = blend_sources("oof", b.blend, labels, row_ids)
    rows = chunk_rows(chunks, row_ids)
    frame = rows.assign(source="soundscape", primary_label="")
    fold_of = folds.assign_folds(frame, params["train"]["n_folds"], params["train"]["fold_salt"])

    def foldwise(raw: np.ndarray, k_knobs) -> np.ndarray:
        out = np.zeros_like(raw)
        for k in np.unique(fold_of):
            inside = fold_of == k
            prior = None
            if k_knobs.prior_alpha:
                fold_files = set(rows.loc[inside, "file_id"])
                prior = postprocess.fit_prior(chunks[~chunks["soundscape_id"].isin(fold_files)], labels)
            out[inside] = postprocess.postprocess(raw[inside], rows[inside].reset_index(drop=True), k_knobs,
                                                  prior=prior, species=species)
        return out

    out = foldwise(blended, knobs)
    y = truth_matrix(rows["labels"], labels)
    truth = y > 0.5
    ref = read_oof(OOF / b.reference / "oof.csv", labels, row_ids, made_by=f"train@{b.reference}")
    head_knobs = postprocess.resolve_knobs(defaults, True, b.reference)
    ref_tta, ref_windows = head_oof_at(b.reference, b.reference_tta, row_ids, fold_of, labels, head_knobs.tta_space)
    ref_pp = foldwise(ref_tta, head_knobs)
    ref_windows["oof_macro_auc_shift0"] = round(macro_auc(truth, foldwise(ref, head_knobs)), 6)  # the TTA's gain: against
    # same_postprocess.reference_oof_macro_auc
    groups = rows["file_id"].to_numpy()
    ci = paired_bootstraps(y, out, {b.reference: ref, "post-processed": ref_pp}, groups, b.bootstrap, b.seed,
                           b.confidence)
    forms = {}
    for relative in (True, False):
        base_k = postprocess.resolve_knobs({**defaults, "prior_relative": relative}, as_given(b.postprocess), NAME)
        head_k = postprocess.resolve_knobs({**defaults, "prior_relative": relative}, True, b.reference)
        forms["relative" if relative else "absolute"] = {
            "base": round(macro_auc(truth, foldwise(blended, base_k)), 6),
            "reference": round(macro_auc(truth, foldwise(ref_tta, head_k)), 6)}
    same = ci["post-processed"]
    candidates = []  # ProtoSSM's TTA candidates (chosen on its own OOF) through the base's blend and post-processing
    listed = OOF / "protossm" / "candidates.json"
    for c in (read_json(listed, "run the protossm stage") if listed.exists() else []):
        c_blend, _ = blend_sources("oof", b.blend, labels, row_ids, protossm_oof=c["file"])
        candidates.append({"shifts": c["shifts"], "oof_macro_auc": round(macro_auc(truth, foldwise(c_blend, knobs)), 6),
                           "oof_macro_auc_before_postprocess": round(macro_auc(truth, c_blend), 6)})
    base_tta = [float(s) for s in read_json(CHAIN_MODELS / "protossm" / "config.json", "run the protossm stage")["tta"]]
    return {"oof_blend": used, "oof_macro_auc": round(macro_auc(truth, out), 6),
            "oof_macro_auc_before_postprocess": round(macro_auc(truth, blended), 6),
            "reference": b.reference, "reference_oof_macro_auc": round(macro_auc(truth, ref), 6),
            "tta_candidates": candidates,
            "base_minus_reference": ci[b.reference].as_dict(),
            "excludes_zero": bool(ci[b.reference].low > 0 or ci[b.reference].high < 0),
            "same_postprocess": {"reference_oof_macro_auc": round(macro_auc(truth, ref_pp), 6),
                                 "base_tta": base_tta, "reference_tta": ref_windows,
                                 "knobs": asdict(head_knobs), "base_minus_reference": same.as_dict(),
                                 "stronger": ("base" if same.low > 0 else b.reference if same.high < 0
                                              else "neither (the interval holds 0)")},
            "prior_form": forms}, {"row_ids": row_ids, "base": out, "reference": ref_pp}
