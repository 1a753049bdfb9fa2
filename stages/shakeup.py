"""Stage `shakeup` (issue 19): over `shakeup.splits` random public/private splits of the hidden files
(by file, `shakeup.public_share` public, as on Kaggle), each submission's private minus public, and
the probability that two submissions swap order from public to private.

Reads the submissions named in `shakeup.rows` and the hidden solution and boards (the observed split).
Per-file pair counts are computed once per submission (scoring/pairs.py), so every split is a matrix
product. Writes build/metrics/shakeup/shakeup.json and build/figures/shakeup.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.io.files import write_json
from birdclef_eos.report.ceiling import plot_shakeup, shakeup_sentences
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.pairs import file_index, pair_counts
from birdclef_eos.scoring.shakeup import random_splits, split_scores, swap_probability
from stages.paths import FIGURES, HIDDEN, SHAKEUP_METRICS, SUBMISSIONS

PARAMS = ("shakeup", "blends")


class ShakeupStageError(ValueError):
    pass


@dataclass
class ShakeupResult:
    """What the shakeup notebook shows: shakeup (shakeup.json without the raw draws), sentences,
    figure, seconds."""
    shakeup: dict
    sentences: list[str]
    figure: str
    seconds: float


def run(params: dict, key: str | None = None) -> ShakeupResult:
    started = time.perf_counter()
    cfg = params["shakeup"]
    if not (HIDDEN / "solution.csv").exists():
        raise ShakeupStageError(f"{HIDDEN}/solution.csv: missing; the shake-up needs the local hidden labels")
    solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
    labels = [c for c in solution.columns if c != "row_id"]
    y = solution[labels].to_numpy()
    keep = (y.sum(axis=0) > 0) & ((1 - y).sum(axis=0) > 0)
    file_of_row, files = file_index(boards.file_of(solution["row_id"]))
    board_table = pd.read_csv(HIDDEN / "boards.csv", dtype=str)
    stem = next(c for c in board_table.columns if c != "board")
    on_board = dict(zip(board_table[stem], board_table["board"]))
    observed = np.array([[on_board.get(f) == "public" for f in files]])
    splits = random_splits(len(files), cfg["public_share"], cfg["splits"], cfg["seed"])

    scores, diffs, subs = {}, {}, {}
    for name in tqdm(cfg["rows"], desc="shake-up", leave=False):
        sub = submission.read(SUBMISSIONS / name / "submission.csv").set_index("row_id")
        missing = sorted(set(solution["row_id"]) - set(sub.index))
        if missing:
            raise ShakeupStageError(f"submissions/{name}/submission.csv lacks {len(missing)} hidden row(s), e.g. {missing[:2]}")
        pc = pair_counts(y[:, keep], sub.reindex(solution["row_id"])[labels].to_numpy()[:, keep], file_of_row, len(files))
        pub, priv = split_scores(pc, splits)
        opub, opriv = split_scores(pc, observed)
        scores[name] = (pub, priv)
        d = priv - pub
        diffs[name] = [round(float(v), 6) for v in d]
        subs[name] = {"observed": round(float(opriv[0] - opub[0]), 6), "mean": round(float(np.mean(d)), 6),
                      "low": round(float(np.percentile(d, 2.5)), 6), "high": round(float(np.percentile(d, 97.5)), 6),
                      "p_gain": round(float(np.mean(d > 0)), 4)}
    swaps = [{"a": a, "b": b, "p_swap": round(swap_probability(*scores[a], *scores[b]), 4)}
             for a, b in combinations(cfg["rows"], 2)]
    result = {"splits": cfg["splits"], "public_share": cfg["public_share"], "seed": cfg["seed"], "files": len(files),
              "blends": [n for n in cfg["rows"] if n in params["blends"]], "submissions": subs, "swaps": swaps,
              "differences": diffs}
    said = shakeup_sentences(result)
    result["sentences"] = said
    write_json(SHAKEUP_METRICS / "shakeup.json", {k: v for k, v in result.items() if k != "differences"})
    figure = FIGURES / "shakeup.png"
    plot_shakeup(result, figure)
    return ShakeupResult(shakeup={k: v for k, v in result.items() if k != "differences"}, sentences=said,
                         figure=str(figure), seconds=time.perf_counter() - started)
