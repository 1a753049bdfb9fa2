"""Stage `leaderboard`: score every submission on the public and private boards of the hidden set,
set them beside the paper's reported scores (Table 2) and, in real-data mode, beside the scores
copied from Kaggle into leaderboard/kaggle.yaml (each bound to the sha256 of the file it scored)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.io.files import read_json, write_json, write_text
from birdclef_eos.report.figures import plot_boards
from birdclef_eos.report.tables import run_settings, table2
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.kaggle import mismatch_note, read_kaggle
from stages.paths import FIGURES, HIDDEN, KAGGLE_SCORES, LEADERBOARD_METRICS, REPORTED, SUBMISSIONS, TABLES

PARAMS = ("leaderboard", "submissions")


@dataclass
class LeaderboardResult:
    """What the leaderboard notebook shows.

    leaderboard: build/metrics/leaderboard/leaderboard.json ({"mode", "submissions": {name: {public,
    private, public_rank, private_rank}}, "kaggle": {name: {public, private, difference, matches}}}).
    table2: Table 2 as markdown; figure: the boards' bar chart. kaggle_dates: {name: YYYY-MM-DD}. mismatches: one sentence per
    Kaggle score whose sha256 is not the local submission's.
    """
    leaderboard: dict
    table2: str
    kaggle_dates: dict[str, str]
    mismatches: list[str]
    figure: str


def local_scores(names: list[str]) -> dict[str, dict]:
    """Public/private scores and ranks of each submission; {} when there is no local solution
    (real-data mode: the hidden labels are Kaggle's)."""
    if not (HIDDEN / "solution.csv").exists():
        return {}
    solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
    sample = pd.read_csv(HIDDEN / "sample_submission.csv", dtype={"row_id": str})
    parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
    scores = {}
    for name in tqdm(names, desc="scoring", leave=False):
        sub = submission.read(SUBMISSIONS / name / "submission.csv")
        submission.validate(sub, sample, name=f"submissions/{name}/submission.csv")
        scores[name] = boards.score_boards(sub, parts)
    return boards.add_ranks(scores)


def manifests(names: list[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        path = SUBMISSIONS / name / "manifest.json"
        if path.exists():
            out[name] = read_json(path)
    return out


def run(params: dict, key: str | None = None) -> LeaderboardResult:
    cfg = params["leaderboard"]
    names = list(params["submissions"]) + [n for n in cfg["others"] if n not in params["submissions"]]
    local = local_scores(names)
    reported = (yaml.safe_load(REPORTED.read_text()) or {}).get("table2", {}) if REPORTED.exists() else {}
    found = manifests(names)
    entries = read_kaggle(KAGGLE_SCORES, set(names),
                          {n: m["submission_sha256"] for n, m in found.items() if "submission_sha256" in m})
    kaggle = {e["submission"]: e for e in entries}
    for e in kaggle.values():
        if e["public"] is not None and e["private"] is not None:
            e["difference"] = e["private"] - e["public"]
    result = {"mode": "local" if local else "kaggle-only", "submissions": local,
              "kaggle": {n: {k: v for k, v in e.items() if k in ("public", "private", "difference", "matches")}
                         for n, e in kaggle.items()}}
    write_json(LEADERBOARD_METRICS / "leaderboard.json", result)
    figure = FIGURES / "leaderboard.png"
    plot_boards(local, reported, figure)
    settings = {n: run_settings(found.get(n)) for n in cfg["table2"]}
    text = table2(cfg["table2"], local, reported, kaggle, settings, cfg["digits"])
    write_text(TABLES / "table2.md", text)
    return LeaderboardResult(leaderboard=result, table2=text,
                             kaggle_dates={n: e["date"] for n, e in kaggle.items()},
                             mismatches=[m for m in map(mismatch_note, kaggle.values()) if m],
                             figure=str(figure))
