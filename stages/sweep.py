"""Stage `sweep`: the paper's v7, rebuilt. v7 came from an OOF sweep of the site/hour
prior strength and the Gaussian sigma that overfit (public 0.861 against v6's 0.879).

Reads the OOF of the head (`sweep.model`, predictions/oof/<model>/oof.csv: labelled soundscape chunks
at shift 0), the chunk index (site, hour, labels; data/index), the raw 3-shift TTA submission of the
same head (`sweep.raw`: v5, no post-processing) and the hidden solution and boards. Scores the grid
`sweep.prior_alpha` x `sweep.sigma` on the OOF (seconds), applies the pick and v6's knobs to the raw
submission, and scores both on the boards with a paired bootstrap over files. Twice: in-sample (the
prior fitted on every labelled chunk, the very chunks the OOF scores: how the paper's sweep could
overfit, kept as an illustration) and leak-free under `leak_free` (each fold's rows take a prior
fitted without that fold's files, the heads' folds: `train.n_folds`, `train.fold_salt`), which is
the v7 test the paper's claim reads. Writes
build/metrics/sweep/sweep.json, build/tables/v7_sweep.md and build/figures/v7_sweep.png.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.data import folds
from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import write_json, write_text
from birdclef_eos.report.sweep import plot_sweep, sweep_markdown, sweep_sentence
from birdclef_eos.scoring import boards, postprocess, submission
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from birdclef_eos.scoring.sweep import sweep, sweep_foldwise
from birdclef_eos.scoring.sweep_config import SweepParams
from stages.paths import FIGURES, HIDDEN, INDEX, OOF, REPORTED, SUBMISSIONS, SWEEP_METRICS, TABLES

PARAMS = ("sweep", "postprocess", "submissions.v6", "submissions.v7", "train.n_folds", "train.fold_salt")


@dataclass
class SweepResult:
    """What the sweep notebook shows: sweep (sweep.json), table (v7_sweep.md), sentence, figure, seconds."""
    sweep: dict
    table: str
    sentence: str
    figure: str
    seconds: float


def rows_of(chunks: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """file_id, chunk, site, hour of each row id, in that order (from data/index/chunks.csv)."""
    table = chunks.set_index("row_id")
    missing = [i for i in ids if i not in table.index]
    if missing:
        raise ValueError(f"{INDEX}/chunks.csv: no row(s) {missing[:2]} ({len(missing)} in all)")
    out = table.loc[ids, ["soundscape_id", "chunk", "site", "hour"]].rename(columns={"soundscape_id": "file_id"})
    return out.reset_index()


def run(params: dict, key: str | None = None) -> SweepResult:
    started = time.perf_counter()
    cfg = SweepParams.model_validate(params["sweep"])  # typed once (birdclef_eos/scoring/sweep_config.py)
    v6_knobs, v7_knobs = (postprocess.resolve_knobs(params["postprocess"], params["submissions"][n].get("postprocess", False), n)
                          for n in ("v6", "v7"))
    species = species_table(INDEX)
    labels = species["primary_label"].astype(str).tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"row_id": str, "labels": str, "site": str})
    prior = postprocess.fit_prior(chunks, labels)

    oof_path = OOF / cfg.model / "oof.csv"
    ids = pd.read_csv(oof_path, usecols=["row_id"], dtype={"row_id": str})["row_id"].tolist()
    P = read_oof(oof_path, labels, ids, f"train@{cfg.model}")
    y = truth_matrix(chunks.set_index("row_id")["labels"].reindex(ids), labels)
    grid = sweep(P, y, rows_of(chunks, ids), v6_knobs, cfg.prior_alpha, cfg.sigma, prior, species,
                 progress=lambda cells: tqdm(cells, desc="OOF grid", leave=False))
    pick = {"prior_alpha": grid.pick[0], "sigma": grid.pick[1]}
    oof_at = lambda a, s: float(grid.scores[grid.alphas.index(a), grid.sigmas.index(s)]) if (a in grid.alphas and s in grid.sigmas) else None  # noqa: E731
    result = {"model": cfg.model, "raw": cfg.raw, "grid": {"prior_alpha": grid.alphas, "sigma": grid.sigmas,
              "oof": np.round(grid.scores, 6).tolist()}, "pick": {**pick, "oof": round(float(np.nanmax(grid.scores)), 6)},
              "v6": {"prior_alpha": v6_knobs.prior_alpha, "sigma": v6_knobs.sigma,
                     "oof": oof_at(v6_knobs.prior_alpha, v6_knobs.sigma)},
              "v7": {"prior_alpha": v7_knobs.prior_alpha, "sigma": v7_knobs.sigma,
                     "oof": oof_at(v7_knobs.prior_alpha, v7_knobs.sigma)},
              "raw_oof": round(float(macro_auc(y, P)), 6)}

    oof_rows = rows_of(chunks, ids)
    fold_of = folds.assign_folds(oof_rows.assign(source="soundscape", split="labelled", primary_label=""),
                                 params["train"]["n_folds"], params["train"]["fold_salt"])
    fold_priors = [(fold_of == k, postprocess.fit_prior(
        chunks[~chunks["soundscape_id"].isin(set(oof_rows.loc[fold_of == k, "file_id"]))], labels))
        for k in np.unique(fold_of)]
    clean = sweep_foldwise(P, y, oof_rows, v6_knobs, cfg.prior_alpha, cfg.sigma, fold_priors, species,
                           progress=lambda cells: tqdm(cells, desc="leak-free OOF grid", leave=False))
    clean_pick = {"prior_alpha": clean.pick[0], "sigma": clean.pick[1]}
    clean_at = lambda a, s: float(clean.scores[clean.alphas.index(a), clean.sigmas.index(s)]) if (a in clean.alphas and s in clean.sigmas) else None  # noqa: E731
    result["leak_free"] = {"grid": {"prior_alpha": clean.alphas, "sigma": clean.sigmas,
                                    "oof": np.round(clean.scores, 6).tolist()},
                           "pick": {**clean_pick, "oof": round(float(np.nanmax(clean.scores)), 6)},
                           "v6_oof": clean_at(v6_knobs.prior_alpha, v6_knobs.sigma),
                           "v7_oof": clean_at(v7_knobs.prior_alpha, v7_knobs.sigma)}

    raw = submission.read(SUBMISSIONS / cfg.raw / "submission.csv")
    test_rows = rows_of(chunks, raw["row_id"].astype(str).tolist())
    made = {}
    for name, knobs in (("v6", v6_knobs), ("pick", postprocess.Knobs(**{**asdict(v6_knobs), **pick})),
                        ("leak_free_pick", postprocess.Knobs(**{**asdict(v6_knobs), **clean_pick}))):
        Q = postprocess.postprocess(raw[labels].to_numpy(dtype=np.float64), test_rows, knobs, prior=prior, species=species)
        made[name] = pd.DataFrame(Q, columns=labels).assign(row_id=raw["row_id"].astype(str).to_numpy()).set_index("row_id")
    v6_file = submission.read(SUBMISSIONS / "v6" / "submission.csv").set_index("row_id")[labels]
    result["v6_rebuilt_max_abs_diff"] = float(np.abs(v6_file.reindex(made["v6"].index).to_numpy() - made["v6"].to_numpy()).max())
    if (HIDDEN / "solution.csv").exists():
        solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
        parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
        cmp = boards.compare(parts, made, "v6", ["pick", "leak_free_pick"], cfg.bootstrap, cfg.seed,
                             cfg.confidence)
        r6 = lambda x: None if x is None else round(x, 6)  # noqa: E731  (None: a board too small to score)
        result["boards"] = {b: {"v6": r6(c["scores"]["v6"]), "pick": r6(c["scores"]["pick"]),
                                "pick_minus_v6": c["vs"]["pick"]} for b, c in cmp.items()}
        result["leak_free"]["boards"] = {b: {"v6": r6(c["scores"]["v6"]), "pick": r6(c["scores"]["leak_free_pick"]),
                                             "pick_minus_v6": c["vs"]["leak_free_pick"]} for b, c in cmp.items()}
    paper = ((yaml.safe_load(REPORTED.read_text()) or {}) if REPORTED.exists() else {}).get("table2", {})
    result["paper"] = {"v6_public": paper.get("v6", {}).get("public"), "v7_public": paper.get("v7", {}).get("public")}
    sentence = sweep_sentence(result)
    result["sentence"] = sentence
    write_json(SWEEP_METRICS / "sweep.json", result)
    table = sweep_markdown(result)
    write_text(TABLES / "v7_sweep.md", table)
    figure = FIGURES / "v7_sweep.png"
    plot_sweep(result, figure)
    return SweepResult(sweep=result, table=table, sentence=sentence, figure=str(figure),
                       seconds=time.perf_counter() - started)
