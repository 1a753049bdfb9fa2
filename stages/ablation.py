"""Stage `ablation`: does the probe pick the best layers for the task?

Reads the OOF predictions (predictions/oof/<variant>/oof.csv), training metrics and submissions of
`ablation.reference` (the probe's choice: the attn variant, train.blocks auto) and of each
`ablation.variants` entry, the labelled chunks (data/index/chunks.csv), the hidden solution and
boards (data/hidden), the focal probe (build/metrics/probe/probe.json, models/probe_selected.json)
and the block features of the labelled soundscape chunks (data/features). Computes, for each
variant, the paired bootstrap interval over files of the probe's choice minus the variant (OOF by
soundscape file, public and private boards by test file), and a second probe ranking on labelled
soundscape chunks with its Spearman correlation to the focal ranking. Writes
build/metrics/ablation/ablation.json and build/tables/ablation.md (the table and its sentences).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.data import features
from birdclef_eos.data.species import species_labels
from birdclef_eos.io.files import read_json, write_json, write_text
from birdclef_eos.probe import soundscape
from birdclef_eos.probe.config import AblationParams
from birdclef_eos.report.ablation import ablation_markdown, sentences
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from stages.paths import (ABLATION_METRICS, FEATURES, HIDDEN, INDEX, OOF, PROBE_METRICS, PROBE_SELECTED,
                          SUBMISSIONS, TABLES, TRAIN_METRICS)

PARAMS = ("ablation",)


class AblationStageError(ValueError):
    pass


@dataclass
class AblationResult:
    """What the ablation notebook shows.

    ablation: build/metrics/ablation/ablation.json ({"reference", "variants": {name: {blocks, head,
    oof, public, private, comparison: {oof|public|private: paired interval}}}, "soundscape_probe"}).
    table: build/tables/ablation.md. sentences: its closing sentences. seconds: wall time.
    """
    ablation: dict
    table: str
    sentences: list[str]
    seconds: float


def oof_comparison(cfg: AblationParams, names: list[str], labels: list[str]) -> tuple[dict, dict]:
    """(OOF macro-AUC of each model, paired intervals of the reference against each variant)."""
    ref = cfg.reference
    ids = pd.read_csv(OOF / ref / "oof.csv", usecols=["row_id"], dtype={"row_id": str})["row_id"].tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"row_id": str, "labels": str})
    cells = chunks.set_index("row_id")["labels"].reindex(ids)
    if cells.isna().any():
        raise AblationStageError(f"{INDEX}/chunks.csv: OOF rows {cells[cells.isna()].index[:3].tolist()} have no labels")
    y = truth_matrix(cells, labels)
    scores = {n: read_oof(OOF / n / "oof.csv", labels, ids, f"train@{n}") for n in [ref] + names}
    groups = boards.file_of(pd.Series(ids)).to_numpy()
    intervals = paired_bootstraps(y, scores[ref], {n: scores[n] for n in names}, groups,
                                  cfg.bootstrap, cfg.seed, cfg.confidence)
    return {n: macro_auc(y, s) for n, s in scores.items()}, intervals


def score_or_null(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def board_comparison(cfg: AblationParams, names: list[str]) -> tuple[dict, dict]:
    """Per board: (scores of each submission, paired intervals); ({}, {}) without a local solution."""
    if not (HIDDEN / "solution.csv").exists():
        return {}, {}
    solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
    parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
    subs = {}
    for name in [cfg.reference_submission] + names:
        path = SUBMISSIONS / name / "submission.csv"
        if not path.exists():
            raise AblationStageError(f"{path}: missing; run predict@{name}")
        subs[name] = submission.read(path).set_index("row_id")
    scores, intervals = {}, {}
    for board, part in parts.items():
        reason = boards.undefined_reason(part, board)
        if reason:  # a small board: every score and interval on it is null with the reason
            scores[board] = {n: None for n in subs}
            intervals[board] = {n: {"difference": None, "low": None, "high": None, "undefined": reason} for n in names}
            continue
        labels = [c for c in part.columns if c != "row_id"]
        ids = part["row_id"].astype(str)
        y = part[labels].to_numpy()
        mat = {n: s.reindex(ids)[labels].to_numpy(dtype=np.float64) for n, s in subs.items()}
        ref = mat[cfg.reference_submission]
        scores[board] = {n: macro_auc(y, m) for n, m in mat.items()}
        intervals[board] = paired_bootstraps(y, ref, {n: mat[n] for n in names}, boards.file_of(ids).to_numpy(),
                                             cfg.bootstrap, cfg.seed, cfg.confidence)
    return scores, intervals


def soundscape_ranking(cfg: AblationParams, labels: list[str], probe: dict) -> dict:
    """The soundscape probe over every extracted block, beside the focal ranking."""
    windows, _, meta = features.load(FEATURES, names=[])
    names = features.block_names(meta)
    _, arrays, _ = features.load(FEATURES, names=names)
    rows = windows[(windows["source"] == "soundscape") & (windows["split"] == "labelled")
                   & np.isclose(windows["shift_s"].astype(float), 0.0)]
    idx = rows.index.to_numpy()
    sp = cfg.soundscape_probe
    scored = soundscape.score_blocks({n: np.asarray(arrays[n][idx]) for n in names}, truth_matrix(rows["labels"], labels),
                                     rows["file_id"].astype(str).to_numpy(), sp.folds, cfg.seed, sp.method,
                                     sp.c, sp.max_iter, progress=lambda x: tqdm(x, desc="soundscape probe", leave=False))
    focal = probe.get("blocks", {})
    blocks = {}
    for n in names:
        entry = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in scored["blocks"][n].items()}
        if n in focal:
            entry["focal_accuracy"] = focal[n]["accuracy"]
            entry["focal_rank"] = focal[n].get("rank")
        blocks[n] = entry
    agreement = soundscape.rank_agreement({n: focal[n]["accuracy"] for n in names if n in focal},
                                          {n: scored["blocks"][n]["macro_auc"] for n in names})
    k = len(read_json(PROBE_SELECTED)["blocks"]) if PROBE_SELECTED.exists() else 3
    focal_top = sorted((n for n in names if n in focal), key=lambda n: focal[n].get("rank", 10**6))[:k]
    sound_top = sorted(names, key=lambda n: scored["blocks"][n]["rank"])[:k]
    return {"method": sp.method, "folds": sp.folds, "n_chunks": scored["n_chunks"], "n_files": scored["n_files"],
            "n_classes_scored": scored["n_classes_scored"], "blocks": blocks,
            "agreement": {k_: (round(v, 6) if isinstance(v, float) else v) for k_, v in agreement.items()},
            "focal_top": [int(n.split("_")[-1]) for n in focal_top],
            "soundscape_top": [int(n.split("_")[-1]) for n in sound_top]}


def train_metrics(name: str) -> dict:
    return read_json(TRAIN_METRICS / name / "metrics.json", f"run train@{name}")


def run(params: dict, key: str | None = None) -> AblationResult:
    started = time.perf_counter()
    cfg = params["ablation"]
    ref, names = cfg["reference"], list(cfg["variants"])
    labels = species_labels(INDEX)
    probe = read_json(PROBE_METRICS / "probe.json", "run the probe stage")
    cfg = AblationParams.model_validate(cfg)  # typed once (birdclef_eos/probe/config.py); ref, names: its values
    selected = read_json(PROBE_SELECTED, "run the probe stage")["blocks"]

    oof, oof_ci = oof_comparison(cfg, names, labels)
    board_scores, board_ci = board_comparison(cfg, names)
    ref_m = train_metrics(ref)
    r6 = lambda x: round(float(x), 6)  # noqa: E731
    reference = {"name": ref, "submission": cfg.reference_submission, "blocks": ref_m["blocks"],
                 "head": ref_m["head"], "oof": r6(oof[ref]), "probe_selected": selected,
                 "is_probe_choice": sorted(ref_m["blocks"]) == sorted(selected)}
    variants = {}
    for n in names:
        m = train_metrics(n)
        choice = m.get("block_choice")
        entry = {"blocks": m["blocks"], "head": m["head"], "choice": choice if isinstance(choice, str) else "list",
                 "oof": r6(oof[n]),
                 "comparison": {"oof": oof_ci[n].as_dict()}}
        for board in board_scores:
            entry[board] = score_or_null(board_scores[board][n])
            ci = board_ci[board][n]
            entry["comparison"][board] = ci if isinstance(ci, dict) else ci.as_dict()
        variants[n] = entry
    for board in board_scores:
        reference[board] = score_or_null(board_scores[board][cfg.reference_submission])
    result = {"reference": reference, "variants": variants, "boards_scored": sorted(board_scores),
              "bootstrap": {"draws": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed},
              "soundscape_probe": soundscape_ranking(cfg, labels, probe)}
    said = sentences(result)
    table = ablation_markdown(result, said)
    write_json(ABLATION_METRICS / "ablation.json", result)
    write_text(TABLES / "ablation.md", table)
    return AblationResult(ablation=result, table=table, sentences=said,
                          seconds=time.perf_counter() - started)
