"""Stage `submit`: every `submissions:` entry's post-processing, in one process: reads each raw
prediction (predictions/raw/<name>/, written by predict@<name>), averages its TTA shifts, runs the
post-processing (the entry's `postprocess` over the shared `postprocess` defaults: site/hour prior,
Gaussian smoothing, ...) and writes submissions/<name>/{submission.csv, manifest.json} in
sample_submission order.

This is arithmetic (milliseconds a submission), so a post-processing experiment (`dvc exp run -S
postprocess.prior_alpha=0.4`) re-runs this stage and what reads the submissions, no head inference.
The rows' file, chunk, site and hour come from data/features/windows.csv (the rows predict@<name>
predicted, checked by row id), the prior from data/index/chunks.csv.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.data import features
from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import read_json, read_yaml, sha256_file
from birdclef_eos.scoring import postprocess, submission
from birdclef_eos.scoring.postprocess_config import Postprocess, as_given
from birdclef_eos.scoring.submission_config import Submission
from stages.paths import DVC_YAML, FEATURES, HIDDEN, INDEX, SUBMISSIONS

RAW_PREDICTIONS = Path("predictions/raw")  # written by predict@<name> (stages/predict.py names the same folder)

PARAMS = ("postprocess", "submissions")
NAME = "submit"
NOTEBOOK = False  # every post-processing experiment re-runs it: a papermill kernel would cost more than the work


class SubmitError(ValueError):
    pass


@dataclass
class SubmitResult:
    """What the stage prints (no notebook): per submission its model, TTA, knobs that are on, rows and
    submission_sha256; seconds: wall time of the whole stage."""
    submissions: dict[str, dict]
    seconds: float

    def __str__(self) -> str:
        lines = [f"{name}: {s['rows']} rows, head {s['model']}, {len(s['tta'])} TTA shift(s), "
                 + (", ".join(f"{k} {v}" for k, v in s["knobs"].items()) or "raw")
                 + f" -> {SUBMISSIONS / name}/submission.csv (sha256 {s['submission_sha256'][:12]})"
                 for name, s in self.submissions.items()]
        return "\n".join(lines + [f"{len(self.submissions)} submissions post-processed in {self.seconds:.1f} s"])


def read_raw(name: str, entry: Submission, labels: list[str]) -> tuple[np.ndarray, list[str], dict]:
    """(per-shift probabilities [S, N, K], their row ids, the raw manifest) of predict@<name>,
    checked against the entry's model and TTA and the species order."""
    folder = RAW_PREDICTIONS / name
    manifest = read_json(folder / "manifest.json", f"run predict@{name}")
    shifts = [float(s) for s in entry.tta]
    if manifest["model"] != entry.model or manifest["tta"] != shifts:
        raise SubmitError(f"{folder}/manifest.json: predicted with model {manifest['model']!r}, tta {manifest['tta']}, "
                          f"but submissions.{name} asks for model {entry.model!r}, tta {shifts}: "
                          f"run `dvc repro predict@{name}`")
    if manifest["labels"] != labels:
        raise SubmitError(f"{folder}/manifest.json: label order differs from {INDEX}/species.csv; "
                          f"run `dvc repro predict@{name}`")
    per_shift = np.load(folder / "per_shift.npy")
    row_ids = pd.read_csv(folder / "row_ids.csv", dtype={"row_id": str}, keep_default_na=False)["row_id"].tolist()
    if per_shift.shape != (len(shifts), len(row_ids), len(labels)):
        raise SubmitError(f"{folder}/per_shift.npy: shape {per_shift.shape}, expected "
                          f"({len(shifts)} shifts, {len(row_ids)} rows in row_ids.csv, {len(labels)} labels)")
    return per_shift, row_ids, manifest


def test_rows(windows: pd.DataFrame, shift: float, row_ids: list[str], name: str) -> pd.DataFrame:
    """The feature store's test rows at ``shift`` in ``row_ids`` order (file_id, chunk, site, hour as
    windows.csv types them: what predict@<name> post-processed before the split)."""
    test = windows[(windows["source"] == "test") & np.isclose(windows["shift_s"].astype(float), shift)]
    test = test.set_index("row_id")
    missing = [r for r in row_ids if r not in test.index]
    if missing or len(test) != len(row_ids):
        raise SubmitError(f"{RAW_PREDICTIONS / name}/row_ids.csv: its rows are not the test rows of "
                          f"{FEATURES}/windows.csv at shift {shift} s ({len(missing)} unknown, e.g. {missing[:2]}); "
                          f"run `dvc repro predict@{name}`")
    return test.loc[row_ids].reset_index()


def check_declared(names: list[str], dvc_yaml: Path = DVC_YAML) -> None:
    """Every submission this stage writes must be one of its dvc.yaml outs: an undeclared folder would be
    neither versioned nor restored by `dvc checkout`, and a later stage reading it would not be ordered after this one."""
    stage = ((read_yaml(dvc_yaml) or {}).get("stages") or {}).get(NAME) or {}
    outs = {str(next(iter(o)) if isinstance(o, dict) else o) for o in stage.get("outs") or []}
    missing = [n for n in names if f"{SUBMISSIONS}/{n}" not in outs]
    if missing:
        raise SubmitError(f"submissions.{missing[0]}: {dvc_yaml} stage '{NAME}' does not list {SUBMISSIONS}/{missing[0]} "
                          f"among its outs; add one `- {SUBMISSIONS}/<name>` per `submissions:` entry there")


def run(params: dict, key: str | None = None) -> SubmitResult:
    """Every submission (``key``: that one alone, for tests)."""
    started = time.perf_counter()
    # typed once (birdclef_eos/scoring/postprocess_config.py, submission_config.py)
    defaults = Postprocess.model_validate(params["postprocess"]).model_dump()
    entries = {n: Submission.model_validate(e) for n, e in params["submissions"].items()}
    names = [key] if key is not None else list(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise SubmitError(f"params.yaml: no submission {unknown[0]!r} under `submissions:` ({sorted(entries)})")
    check_declared(names)
    species = species_table(INDEX)
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"labels": str, "site": str})
    windows, _, _ = features.load(FEATURES, names=[])
    order = submission.order_frame(HIDDEN / "sample_submission.csv", chunks, labels)
    sample = HIDDEN / "sample_submission.csv"
    sample_sha = {sample.as_posix(): sha256_file(sample)} if sample.exists() else {}
    prior = None  # fitted once, on the labelled chunks, for every submission with a prior
    done: dict[str, dict] = {}
    for name in names:
        entry = entries[name]
        knobs = postprocess.resolve_knobs(defaults, as_given(entry.postprocess), name)
        per_shift, row_ids, raw = read_raw(name, entry, labels)
        rows = test_rows(windows, raw["tta"][0], row_ids, name)
        probs = postprocess.average_shifts(list(per_shift), knobs.tta_space)
        if knobs.prior_alpha and prior is None:
            prior = postprocess.fit_prior(chunks, labels)
        probs = postprocess.postprocess(probs, rows, knobs, prior=prior if knobs.prior_alpha else None,
                                        species=species)
        sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
        submission.validate(sub, order, name=f"submission '{name}'")
        manifest = submission.write_folder(SUBMISSIONS / name, sub, {
            "submission": name, "model": entry.model, "tta": raw["tta"], "entry": entry.model_dump(exclude_unset=True),
            "postprocess": asdict(knobs), "rows": len(sub), "labels": len(labels),
            "sha256": {**raw["sha256"], **sample_sha}, "bytes_depend_on": raw["bytes_depend_on"]})
        done[name] = {"model": entry.model, "tta": raw["tta"], "rows": len(sub),
                      "knobs": {k: getattr(knobs, k) for k in postprocess.STEP_KNOBS if getattr(knobs, k)},
                      "submission_sha256": manifest["submission_sha256"]}
    return SubmitResult(submissions=done, seconds=time.perf_counter() - started)
