"""Stage `ceiling`: the plateau of section 7, as a function of the partner's weight and
strength.

Reads the base submission (`ceiling.base`), the real partners (`ceiling.partners`: the head's v6,
the ViT), the hidden solution and boards, and the species table. For each partner, blends
(1 - w) base + w partner over `ceiling.weights` as the blend stage does (`blend.space`, then the
taxonomy smoothing of `blend.taxonomy`) and scores each on both boards with a bootstrap band over
files and the gain over the base alone. Then a control partner per strength in
`ceiling.control.strengths` (the hidden labels plus Gaussian noise at that macro-AUC, given v6's
calibration; labelled "control", never a submission) is blended at `ceiling.control.weight`: the
strength at which the gain's interval leaves zero is where the base stops absorbing a partner.
Writes build/metrics/ceiling/ceiling.json and build/figures/plateau.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.io.files import write_json
from birdclef_eos.report.ceiling import plateau_sentences, plot_plateau
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.blend import align, mix
from birdclef_eos.scoring.ceiling import control_partner, curve
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.postprocess import taxonomy_smooth
from stages.paths import CEILING_METRICS, FIGURES, HIDDEN, INDEX, SUBMISSIONS

PARAMS = ("ceiling", "blend.space", "blend.taxonomy")


class CeilingStageError(ValueError):
    pass


@dataclass
class CeilingResult:
    """What the ceiling notebook shows: ceiling (ceiling.json), sentences, figure, seconds."""
    ceiling: dict
    sentences: list[str]
    figure: str
    seconds: float


def run(params: dict, key: str | None = None) -> CeilingResult:
    started = time.perf_counter()
    cfg, space, tax = params["ceiling"], params["blend"]["space"], params["blend"]["taxonomy"]
    if not (HIDDEN / "solution.csv").exists():
        raise CeilingStageError(f"{HIDDEN}/solution.csv: missing; the plateau needs the local hidden labels "
                                "(real-data mode builds them from held-out labelled soundscapes)")
    names = [cfg["base"]] + cfg["partners"] + [cfg["control"]["like"]]
    frames = {}
    for n in dict.fromkeys(names):
        frames[n] = submission.read(SUBMISSIONS / n / "submission.csv")
    ids, labels, arrays = align(frames)
    species = pd.read_csv(INDEX / "species.csv", keep_default_na=False).set_index("primary_label").loc[labels]
    smooth = lambda P: taxonomy_smooth(P, species["genus"].to_numpy(), species["class_name"].to_numpy(),  # noqa: E731
                                       tax["genus"], tax["class"])
    solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
    parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    boot = (cfg["bootstrap"], cfg["seed"], cfg["confidence"])

    def on_board(board: str, P: np.ndarray):
        part = parts[board]
        cols = [c for c in part.columns if c != "row_id"]
        rows = position.reindex(part["row_id"].astype(str)).to_numpy()
        if np.isnan(rows.astype(float)).any():
            raise CeilingStageError(f"the submissions lack rows of the {board} board")
        idx = [labels.index(c) for c in cols]
        return part[cols].to_numpy(), P[rows][:, idx], boards.file_of(part["row_id"]).to_numpy()

    base = smooth(mix({"b": arrays[cfg["base"]]}, {"b": 1.0}, space))
    out = {"base": cfg["base"], "space": space, "taxonomy": tax, "partners": {}, "control": {},
           "bootstrap": {"draws": cfg["bootstrap"], "confidence": cfg["confidence"], "seed": cfg["seed"]}}
    for partner in tqdm(cfg["partners"], desc="plateau partners", leave=False):
        blends = {w: smooth(mix({"b": arrays[cfg["base"]], "p": arrays[partner]}, {"b": 1 - w, "p": w}, space))
                  for w in cfg["weights"]}
        blends[0.0] = base
        entry = {}
        for board in boards.BOARDS:
            y, _, files = on_board(board, base)
            entry[board] = curve(y, on_board(board, base)[1], {w: on_board(board, P)[1] for w, P in blends.items()},
                                 files, *boot).as_dict()
            entry[board]["standalone"] = round(float(macro_auc(y, on_board(board, arrays[partner])[1])), 6)
        out["partners"][partner] = entry

    ctl = cfg["control"]
    truth = solution.set_index("row_id").reindex(ids)[labels].to_numpy()
    if np.isnan(truth).any():
        raise CeilingStageError(f"{HIDDEN}/solution.csv lacks rows or labels of the submissions")
    w = ctl["weight"]
    for strength in tqdm(ctl["strengths"], desc="control partners", leave=False):
        scores, achieved = control_partner(truth, arrays[ctl["like"]], strength, seed=ctl["seed"], tol=ctl["tolerance"])
        blended = smooth(mix({"b": arrays[cfg["base"]], "p": scores}, {"b": 1 - w, "p": w}, space))
        entry = {"target": strength, "achieved": round(float(achieved), 6)}
        for board in boards.BOARDS:
            y, b0, files = on_board(board, base)
            c = curve(y, b0, {0.0: b0, w: on_board(board, blended)[1]}, files, *boot).as_dict()
            entry[board] = {"standalone": round(float(macro_auc(y, on_board(board, scores)[1])), 6),
                            "base": c["score"][0], "blend": c["score"][1], "gain": c["gain"][1],
                            "gain_low": c["gain_low"][1], "gain_high": c["gain_high"][1]}
        out["control"][f"{strength:g}"] = entry
    out["control_weight"] = w
    said = plateau_sentences(out)
    out["sentences"] = said
    write_json(CEILING_METRICS / "ceiling.json", out)
    figure = FIGURES / "plateau.png"
    plot_plateau(out, figure)
    return CeilingResult(ceiling=out, sentences=said, figure=str(figure), seconds=time.perf_counter() - started)
