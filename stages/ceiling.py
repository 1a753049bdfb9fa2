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

Then the other way round: control BASES (`ceiling.control_bases`: the hidden labels plus noise at
each strength, mapped onto the real base's columns so they are rank-valued like it; never a
submission) with the real head (`control_bases.head`) blended in at `control.weight`, in
`blend.space` and, for contrast, the other space: the head's gain against the base's strength, the
paper's regime (a base near `control_bases.regime`) marked. And on the OOF (the base's and its
reference head's, post-processed as the base stage scored them, predictions/oof/base/): what `rank`
and `prob` give at `control.weight` after the taxonomy smoothing, with each part's effective share;
with `blend.space: oof` this analysis uses the space that comparison picks. That weight is this analysis's own (the paper's 0.07, the control partner's
too), not `blend.weight`: an analysis of the regime, not of the submissions, so `dvc exp run -S
blend.weight=...` does not re-run this stage (seconds of bootstraps) for numbers it does not show.
Writes build/metrics/ceiling/ceiling.json, build/figures/plateau.png and
build/figures/plateau_strength.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import write_json
from birdclef_eos.report.ceiling import plateau_sentences, plot_plateau, plot_strength, strength_sentences
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.blend import SPACES, align, mix
from birdclef_eos.scoring.shares import effective_shares
from birdclef_eos.scoring.ceiling import control_partner, curve, nearest
from birdclef_eos.scoring.ceiling_config import CeilingParams
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.postprocess import taxonomy_smooth
from birdclef_eos.scoring.space import compare_spaces_on_oof
from stages.paths import BASE_OOF, CEILING_METRICS, FIGURES, HIDDEN, INDEX, SUBMISSIONS

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


def submission_array(name: str, ids: pd.Series, labels: list[str]) -> np.ndarray:
    frame = submission.read(SUBMISSIONS / name / "submission.csv").set_index("row_id").reindex(ids)
    if frame[labels].isna().any().any():
        raise CeilingStageError(f"submissions/{name}/submission.csv lacks rows or labels of the base")
    return frame[labels].to_numpy(dtype=np.float64)


def space_on_oof(species: pd.DataFrame, smooth, cfg: CeilingParams, weight: float) -> dict | None:
    """`rank` against `prob` on the labelled soundscape OOF (birdclef_eos/scoring/space.py, as `blend.space:
    oof` decides at `blend.weight`): the base's and its reference head's OOF as the base stage scored them
    (predictions/oof/base/), blended at ``weight`` and smoothed as the blend is; None when the base has no
    OOF (base.source: file)."""
    labels = species.index.astype(str).tolist()
    on_oof = compare_spaces_on_oof(BASE_OOF, INDEX / "chunks.csv", labels, weight, smooth, cfg.bootstrap, cfg.seed,
                                   cfg.confidence, required=False)
    if on_oof is None:
        return None
    result, reference = on_oof
    return {"head_model": reference, **result}


def run(params: dict, key: str | None = None) -> CeilingResult:
    started = time.perf_counter()
    cfg = CeilingParams.model_validate(params["ceiling"])  # typed once (birdclef_eos/scoring/ceiling_config.py)
    space, tax = params["blend"]["space"], params["blend"]["taxonomy"]
    head_w = cfg.control.weight
    if not (HIDDEN / "solution.csv").exists():
        raise CeilingStageError(f"{HIDDEN}/solution.csv: missing; the plateau needs the local hidden labels "
                                "(real-data mode builds them from held-out labelled soundscapes)")
    names = [cfg.base] + cfg.partners + [cfg.control.like]
    frames = {}
    for n in dict.fromkeys(names):
        frames[n] = submission.read(SUBMISSIONS / n / "submission.csv")
    ids, labels, arrays = align(frames)
    species = species_table(INDEX).set_index("primary_label").loc[labels]
    smooth = lambda P: taxonomy_smooth(P, species["genus"].to_numpy(), species["class_name"].to_numpy(),  # noqa: E731
                                       tax["genus"], tax["class"])
    solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
    parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    boot = (cfg.bootstrap, cfg.seed, cfg.confidence)
    # a board where no label column has both a positive and a negative has no macro-AUC (a small real
    # folder's board of a few files): its entries say why instead of a score, and the readers say "undefined"
    undefined = {b: boards.undefined_reason(parts[b], b) for b in boards.BOARDS}

    def on_board(board: str, P: np.ndarray):
        part = parts[board]
        cols = [c for c in part.columns if c != "row_id"]
        rows = position.reindex(part["row_id"].astype(str)).to_numpy()
        if np.isnan(rows.astype(float)).any():
            raise CeilingStageError(f"the submissions lack rows of the {board} board")
        idx = [labels.index(c) for c in cols]
        return part[cols].to_numpy(), P[rows][:, idx], boards.file_of(part["row_id"]).to_numpy()

    on_oof = space_on_oof(species, smooth, cfg, head_w)
    if space == "oof":  # as the blend stage chooses at blend.weight, here at this analysis' weight
        space = on_oof["chosen"]
    base = smooth(mix({"b": arrays[cfg.base]}, {"b": 1.0}, space))
    out = {"base": cfg.base, "space": space, "taxonomy": tax, "partners": {}, "control": {},
           "bootstrap": {"draws": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}}
    for partner in tqdm(cfg.partners, desc="plateau partners", leave=False):
        blends = {w: smooth(mix({"b": arrays[cfg.base], "p": arrays[partner]}, {"b": 1 - w, "p": w}, space))
                  for w in cfg.weights}
        blends[0.0] = base
        entry = {}
        for board in boards.BOARDS:
            if undefined[board]:
                entry[board] = unscored(undefined[board])
                continue
            y, _, files = on_board(board, base)
            entry[board] = curve(y, on_board(board, base)[1], {w: on_board(board, P)[1] for w, P in blends.items()},
                                 files, *boot).as_dict()
            entry[board]["standalone"] = round(float(macro_auc(y, on_board(board, arrays[partner])[1])), 6)
        out["partners"][partner] = entry

    ctl = cfg.control
    truth = solution.set_index("row_id").reindex(ids)[labels].to_numpy()
    if np.isnan(truth).any():
        raise CeilingStageError(f"{HIDDEN}/solution.csv lacks rows or labels of the submissions")
    w = ctl.weight
    whole = boards.undefined_reason(solution, "whole hidden")  # the control's strength is tuned on every row
    if whole:
        out.update(control_weight=w, control_bases={"undefined": whole}, space_on_oof=on_oof)
        return finish(out, started)
    for strength in tqdm(ctl.strengths, desc="control partners", leave=False):
        scores, achieved = control_partner(truth, arrays[ctl.like], strength, seed=ctl.seed, tol=ctl.tolerance)
        blended = smooth(mix({"b": arrays[cfg.base], "p": scores}, {"b": 1 - w, "p": w}, space))
        entry = {"target": strength, "achieved": round(float(achieved), 6)}
        for board in boards.BOARDS:
            if undefined[board]:
                entry[board] = unscored(undefined[board])
                continue
            y, b0, files = on_board(board, base)
            c = curve(y, b0, {0.0: b0, w: on_board(board, blended)[1]}, files, *boot).as_dict()
            entry[board] = {"standalone": round(float(macro_auc(y, on_board(board, scores)[1])), 6),
                            "base": c["score"][0], "blend": c["score"][1], "gain": c["gain"][1],
                            "gain_low": c["gain_low"][1], "gain_high": c["gain_high"][1]}
        out["control"][f"{strength:g}"] = entry
    out["control_weight"] = w

    cb = cfg.control_bases
    head = arrays[cb.head] if cb.head in arrays else submission_array(cb.head, ids, labels)
    spaces = [space] + [s for s in SPACES if s != space]
    out["control_bases"] = {"head": cb.head, "weight": head_w, "space": space, "seed": cb.seed,
                            "regime_target": cb.regime, "strengths": {}}
    for strength in tqdm(cb.strengths, desc="control bases", leave=False):
        made, achieved = control_partner(truth, arrays[cfg.base], strength, seed=cb.seed, tol=ctl.tolerance)
        entry = {"target": strength, "achieved": round(float(achieved), 6)}
        for sp in spaces:
            alone = smooth(mix({"b": made}, {"b": 1.0}, sp))
            blended = smooth(mix({"b": made, "p": head}, {"b": 1 - head_w, "p": head_w}, sp))
            per = {"effective_share": effective_shares({"b": made, "p": head}, {"b": 1 - head_w, "p": head_w}, sp)["p"]["effective"]}
            for board in boards.BOARDS:
                if undefined[board]:
                    per[board] = unscored(undefined[board])
                    continue
                y, b0, files = on_board(board, alone)
                c = curve(y, b0, {0.0: b0, head_w: on_board(board, blended)[1]}, files, *boot).as_dict()
                per[board] = {"base": c["score"][0], "blend": c["score"][1], "difference": c["gain"][1],
                              "low": c["gain_low"][1], "high": c["gain_high"][1],
                              "head": round(float(macro_auc(y, on_board(board, head)[1])), 6)}
            entry[sp] = per
        out["control_bases"]["strengths"][f"{strength:g}"] = entry
    at = nearest(cb.strengths, cb.regime)
    reg = out["control_bases"]["strengths"][f"{at:g}"]
    out["control_bases"]["regime"] = {"strength": at, "achieved": reg["achieved"], "space": space,
                                      **{b: reg[space][b] for b in boards.BOARDS}}
    out["space_on_oof"] = on_oof
    return finish(out, started)


def unscored(reason: str) -> dict:
    """A board's entry where macro-AUC does not exist: no score, no interval, and why."""
    return {"undefined": reason, "difference": None, "low": None, "high": None}


def finish(out: dict, started: float) -> CeilingResult:
    """The sentences, ceiling.json and both figures."""
    said = plateau_sentences(out) + strength_sentences(out)
    out["sentences"] = said
    write_json(CEILING_METRICS / "ceiling.json", out)
    figure = FIGURES / "plateau.png"
    plot_plateau(out, figure)
    plot_strength(out, FIGURES / "plateau_strength.png")
    return CeilingResult(ceiling=out, sentences=said, figure=str(figure), seconds=time.perf_counter() - started)
