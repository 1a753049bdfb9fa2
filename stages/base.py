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
`base.source: file`: takes `base.file`, a submission.csv the real chain produced, validated against
the sample submission (errors name the file, column and row) and recorded by sha256; no OOF.
`base.variants`: knob variants of the built chain (blend or post-processing overrides), each written
as its own submission (eos8's rank power 0.65, eos9's three-part anchor: README says what stands in
for what). Writes submissions/base/{submission.csv, manifest.json}, submissions/<variant>/ and
build/metrics/base/metrics.json.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.data import folds
from birdclef_eos.io.files import atomic_dir, sha256_file, sha256_tree, write_json
from birdclef_eos.scoring import postprocess, submission
from birdclef_eos.scoring.blend import mix, positive_weights
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from stages.paths import BASE_METRICS, CHAIN_PREDICTIONS, HIDDEN, INDEX, OOF, SUBMISSIONS

PARAMS = ("base.source", "base.file", "base.blend", "base.postprocess", "base.variants", "base.reference", "base.bootstrap",
          "base.confidence", "base.seed", "postprocess", "train.n_folds", "train.fold_salt")
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


def blend_sources(kind: str, weights: dict, labels: list[str], row_ids: list[str]) -> tuple[np.ndarray, dict]:
    """The rank blend of the models whose ``kind`` file exists (test: all must; oof: ProtoSSM must)."""
    paths = {"protossm": (OOF / "protossm" / "oof.csv") if kind == "oof" else CHAIN_PREDICTIONS / "protossm" / "test.csv",
             "sed": CHAIN_PREDICTIONS / "sed" / ("oof.csv" if kind == "oof" else "test.csv")}
    used = {m: w for m, w in weights.items() if w > 0 and (kind == "test" or paths[m].exists() or m == "protossm")}
    preds = {m: read_predictions(paths[m], labels, row_ids) for m in used}
    return mix(preds, positive_weights(used), "rank"), used


def run(params: dict, key: str | None = None) -> BaseResult:
    started = time.perf_counter()
    b = params["base"]
    knobs = postprocess.resolve_knobs(params["postprocess"], b["postprocess"], NAME)
    species = pd.read_csv(INDEX / "species.csv", keep_default_na=False).sort_values("label_idx")
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str, "row_id": str})
    order = submission_order(chunks, labels)
    test_ids = order["row_id"].astype(str).tolist()
    metrics: dict = {"source": b["source"], "postprocess": asdict(knobs)}
    if b["source"] != "stages" and b["variants"]:  # checked before anything is written
        name = next(iter(b["variants"]))
        raise BaseStageError(f"base.variants.{name}: a variant re-blends the stand-in's own models, and base.source "
                             f"is {b['source']!r}: set base.variants: {{}} (and drop the blends that use them)")

    if b["source"] == "file":
        path = Path(b["file"])
        if not path.exists():
            raise BaseStageError(f"base.file = {b['file']!r}: no such file (base.source: file)")
        try:
            sub = pd.read_csv(path, dtype={"row_id": str})
        except Exception as exc:  # a file pandas cannot parse
            raise BaseStageError(f"{path}: not a readable CSV ({exc})") from exc
        submission.validate(sub, order, name=str(path))
        sub = sub.set_index("row_id").loc[test_ids].reset_index()
        inputs = {str(path): sha256_file(path)}
        metrics.update(oof_macro_auc=None, note="source: file - the real chain's output; no OOF here")
    else:
        probs, used = blend_sources("test", b["blend"], labels, test_ids)
        rows = chunk_rows(chunks, test_ids)
        prior = postprocess.fit_prior(chunks, labels) if knobs.prior_alpha else None
        probs = postprocess.postprocess(probs, rows, knobs, prior=prior, species=species)
        sub = submission.build(test_ids, probs, labels, order)
        inputs = sha256_tree([CHAIN_PREDICTIONS / m / "test.csv" for m in used] + [INDEX / "chunks.csv"])
        metrics.update(blend=used, **oof_metrics(b, params, knobs, chunks, labels, species))
    submission.validate(sub, order, name="submission 'base'")
    manifest = write_submission(NAME, sub, {"model": "baseline chain (stand-in)" if b["source"] == "stages" else "file",
                                            "source": b["source"], "blend": b["blend"], "postprocess": asdict(knobs),
                                            "rows": len(sub), "labels": len(labels), "sha256": inputs})
    metrics["submission_sha256"] = manifest["submission_sha256"]
    metrics["variants"] = {}
    for name, over in b["variants"].items():  # knob variants of the built chain (eos8, eos9's anchors)
        v_knobs = postprocess.resolve_knobs(params["postprocess"], {**b["postprocess"], **over.get("postprocess", {})}, name)
        v_blend = {**b["blend"], **over.get("blend", {})}
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
    return BaseResult(metrics=metrics, manifest=manifest, seconds=time.perf_counter() - started)


def write_submission(name: str, sub: pd.DataFrame, manifest: dict) -> dict:
    """submissions/<name>/{submission.csv, manifest.json}, atomically; returns the manifest."""
    manifest = {"submission": name, **manifest}
    with atomic_dir(SUBMISSIONS / name) as tmp:
        sub.to_csv(tmp / "submission.csv", index=False, float_format="%.6f")
        manifest["submission_sha256"] = sha256_file(tmp / "submission.csv")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return manifest


def oof_metrics(b: dict, params: dict, knobs, chunks: pd.DataFrame, labels: list[str], species) -> dict:
    """Base OOF (blend + post-processing, the prior of each fold fitted without its files) against the
    reference head's OOF, paired bootstrap over files: against the head's raw OOF (what the head's
    training reports), and against the head's OOF under the same fold-wise post-processing as its
    submission (the shared `postprocess` knobs): the like-for-like comparison. ``prior_form``: both
    OOFs with the site/hour prior in the relative and in the absolute form, the rest unchanged (the
    evidence for `postprocess.prior_relative`)."""
    labelled = chunks[chunks["split"] == "labelled"].copy()
    row_ids = labelled["row_id"].astype(str).tolist()
    blended, used = blend_sources("oof", b["blend"], labels, row_ids)
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
    ref = read_oof(OOF / b["reference"] / "oof.csv", labels, row_ids, made_by=f"train@{b['reference']}")
    head_knobs = postprocess.resolve_knobs(params["postprocess"], True, b["reference"])
    ref_pp = foldwise(ref, head_knobs)
    groups = rows["file_id"].to_numpy()
    ci = paired_bootstraps(y, out, {b["reference"]: ref, "post-processed": ref_pp}, groups, b["bootstrap"], b["seed"],
                           b["confidence"])
    forms = {}
    for relative in (True, False):
        base_k = postprocess.resolve_knobs({**params["postprocess"], "prior_relative": relative}, b["postprocess"], NAME)
        head_k = postprocess.resolve_knobs({**params["postprocess"], "prior_relative": relative}, True, b["reference"])
        forms["relative" if relative else "absolute"] = {
            "base": round(macro_auc(truth, foldwise(blended, base_k)), 6),
            "reference": round(macro_auc(truth, foldwise(ref, head_k)), 6)}
    same = ci["post-processed"]
    return {"oof_blend": used, "oof_macro_auc": round(macro_auc(truth, out), 6),
            "oof_macro_auc_before_postprocess": round(macro_auc(truth, blended), 6),
            "reference": b["reference"], "reference_oof_macro_auc": round(macro_auc(truth, ref), 6),
            "base_minus_reference": ci[b["reference"]].as_dict(),
            "excludes_zero": bool(ci[b["reference"]].low > 0 or ci[b["reference"]].high < 0),
            "same_postprocess": {"reference_oof_macro_auc": round(macro_auc(truth, ref_pp), 6),
                                 "knobs": asdict(head_knobs), "base_minus_reference": same.as_dict(),
                                 "stronger": ("base" if same.low > 0 else b["reference"] if same.high < 0
                                              else "neither (the interval holds 0)")},
            "prior_form": forms}
