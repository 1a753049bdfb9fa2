"""Stage `leaderboard`: score every submission on the public and private boards of the hidden set,
set them beside the paper's reported scores (Table 2) and, in real-data mode, beside the scores
copied from Kaggle into leaderboard/kaggle.yaml (each bound to the sha256 of the file it scored).

It also measures the shake-up: over `shakeup.splits` random public/private splits of the
hidden files (by file, `shakeup.public_share` public, as on Kaggle), each submission's private minus
public, and the probability that two submissions swap order from public to private. Per-file pair
counts are computed once per submission (scoring/pairs.py), so every split is a matrix product.
Writes build/metrics/shakeup/shakeup.json and build/figures/shakeup.png. One stage, not two: a
`dvc exp run -S blend.weight=...` re-runs both, and a stage costs seconds of start-up."""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.data.species import species_table
from birdclef_eos.io.files import read_json, write_json, write_text
from birdclef_eos.report.ceiling import plot_no_shakeup, plot_shakeup, shakeup_sentences
from birdclef_eos.report.figures import plot_boards
from birdclef_eos.report.leaderboard_config import LeaderboardParams
from birdclef_eos.report.blendparts import blend_parts_markdown
from birdclef_eos.report.tables import board_table, run_settings, table2
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.kaggle import mismatch_note, read_kaggle
from birdclef_eos.scoring.pairs import file_index, pair_counts
from birdclef_eos.scoring.postprocess import taxonomy_smooth
from birdclef_eos.scoring.shakeup_config import ShakeupParams
from birdclef_eos.scoring.shakeup import random_splits, split_scores, summarise, swap_probability
from stages.paths import (BLEND_METRICS, FIGURES, HIDDEN, INDEX, KAGGLE_SCORES, LEADERBOARD_METRICS, REPORTED,
                          SHAKEUP_METRICS, SUBMISSIONS, TABLES)

PARAMS = ("leaderboard", "submissions", "blends", "shakeup")
# every experiment re-runs this stage: a papermill kernel's start-up was a third of its time. What a
# notebook would show is in files a person reads: the boards in build/metrics/leaderboard/leaderboard.json
# and build/figures/leaderboard.png, Tables 2-4 in build/tables/, the shake-up's sentences and figure in
# build/metrics/shakeup/shakeup.json and build/figures/shakeup.png (all published by `publish`); the run
# prints the best submission and the shake-up's sentences (``LeaderboardResult.__str__``).
NOTEBOOK = False


class LeaderboardError(ValueError):
    pass


@dataclass
class Hidden:
    """The local hidden set and the submissions scored on it, each file read once: every experiment
    re-runs this stage, and the boards, Tables 3-4 and the shake-up all read the same files.

    solution: data/hidden/solution.csv (rows x [row_id + one 0/1 column per class]); parts: {board:
    its solution rows} (boards.split_solution); board_of: data/hidden/boards.csv (file stem, board).
    ``frame(name)`` is submissions/<name>/submission.csv as read (row_id a column), ``indexed(name)`` the
    same indexed by row_id; both read the file on first use only."""
    solution: pd.DataFrame
    parts: dict[str, pd.DataFrame]
    board_of: pd.DataFrame
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def read(cls) -> "Hidden | None":
        """None without a local hidden set (real-data mode: the hidden labels are Kaggle's)."""
        if not (HIDDEN / "solution.csv").exists():
            return None
        solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
        board_of = pd.read_csv(HIDDEN / "boards.csv", dtype=str)
        return cls(solution, boards.split_solution(solution, board_of), board_of)

    def frame(self, name: str) -> pd.DataFrame:
        if name not in self.frames:
            self.frames[name] = submission.read(SUBMISSIONS / name / "submission.csv")
        return self.frames[name]

    def indexed(self, name: str) -> pd.DataFrame:
        return self.frame(name).set_index("row_id")


@dataclass
class LeaderboardResult:
    """What the stage prints (``__str__``) and its tests read.

    leaderboard: build/metrics/leaderboard/leaderboard.json ({"mode", "submissions": {name: {public,
    private, public_rank, private_rank}}, "kaggle": {name: {public, private, difference, matches}}}).
    table2: Table 2 as markdown; table3: Table 3 (build/tables/table3.md; differences to
    `leaderboard.table3.reference` with paired bootstrap intervals in build/metrics/leaderboard/table3.json); figure: the boards' bar chart.
    shakeup: build/metrics/shakeup/shakeup.json (without the raw draws); shakeup_sentences, shakeup_figure. kaggle_dates: {name: YYYY-MM-DD}. mismatches: one sentence per
    Kaggle score whose sha256 is not the local submission's.
    """
    leaderboard: dict
    table2: str
    kaggle_dates: dict[str, str]
    mismatches: list[str]
    figure: str
    table3: str
    table4: str
    shakeup: dict
    shakeup_sentences: list[str]
    shakeup_figure: str

    def __str__(self) -> str:
        board = self.leaderboard["submissions"]
        scored = {n: s for n, s in board.items() if s.get("public") is not None and s["public"] == s["public"]}
        show = lambda x: "undefined" if x is None or x != x else f"{x:.3f}"  # noqa: E731  (None or NaN: too small a board)
        if scored:
            best = max(scored, key=lambda n: scored[n]["public"])
            head = (f"best on the local public board: {best} ({show(board[best]['public'])} public, "
                    f"{show(board[best].get('private'))} private) of {len(board)} submissions")
        elif board:
            head = "the local public board has no score (no label with both positives and negatives)"
        else:
            head = "no local solution: Kaggle's scores only"
        return "\n".join([f"{head}; {LEADERBOARD_METRICS}/leaderboard.json, {TABLES}/table2-4.md, {self.figure}",
                          *self.mismatches, *self.shakeup_sentences, self.shakeup_figure])


def local_scores(names: list[str], hidden: Hidden | None) -> dict[str, dict]:
    """Public/private scores and ranks of each submission; {} when there is no local solution
    (real-data mode: the hidden labels are Kaggle's)."""
    if hidden is None:
        return {}
    sample = pd.read_csv(HIDDEN / "sample_submission.csv", dtype={"row_id": str})
    scores = {}
    for name in tqdm(names, desc="scoring", leave=False):
        sub = hidden.frame(name)
        submission.validate(sub, sample, name=f"submissions/{name}/submission.csv")
        scores[name] = boards.score_boards(sub, hidden.parts)
    return boards.add_ranks(scores)


def manifests(names: list[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        path = SUBMISSIONS / name / "manifest.json"
        if path.exists():
            out[name] = read_json(path)
    return out


def against_parts(cfg: LeaderboardParams, blend_name: str, entry: dict, hidden: Hidden | None = None) -> dict:
    """``blend_name`` minus each of its parts on both boards (paired bootstrap over each board's
    files, boards.compare): each submission part as it is, and the blend's `rest` part (the base)
    also with the blend's own taxonomy smoothing applied, so the head's share is told apart from the
    smoothing. Returns {id: {label, public, private}}; {} without a local hidden set."""
    hidden = hidden or Hidden.read()
    if hidden is None:
        return {}
    parts = hidden.parts
    subs = {n: hidden.indexed(n) for n in [blend_name, *entry["weights"]]}
    rows = {p: (f"{p} (as blended, weight {w:.2f})", subs[p]) for p, w in entry["weights"].items()}
    tax = entry.get("taxonomy")
    if tax:
        base = max(entry["weights"], key=entry["weights"].get)  # the anchor: the part with the largest weight
        cols = [c for c in subs[base].columns]
        species = species_table(INDEX).set_index("primary_label").loc[cols]
        smoothed = pd.DataFrame(taxonomy_smooth(subs[base][cols].to_numpy(dtype=np.float64), species["genus"].to_numpy(),
                                                species["class_name"].to_numpy(), tax["genus"], tax["class"]),
                                index=subs[base].index, columns=cols)
        rows[f"smoothed_{base}"] = (f"{base} + taxonomy smoothing (genus {tax['genus']:g}, class {tax['class']:g})",
                                    smoothed)
    boot = cfg.bootstrap
    out = {}
    for key, (label, frame) in rows.items():
        got = boards.compare(parts, {key: frame, blend_name: subs[blend_name]}, key, [blend_name],
                             boot.draws, boot.seed, boot.confidence)
        out[key] = {"label": label, **{b: got[b]["vs"][blend_name] for b in got}}
    return out


def blend_parts(cfg: LeaderboardParams, blend_names: list[str], hidden: Hidden) -> tuple[str | None, dict, dict, str | None]:
    """(Table 3's blend, its parts compared, every blend's effective shares, blend.space) from
    build/metrics/blend/blend.json; Nones when the table has no blend or the blend stage wrote none."""
    path = BLEND_METRICS / "blend.json"
    name = next((r for r in cfg.table3.rows if r in blend_names), None)
    if name is None or not path.exists():
        return None, {}, {}, None
    written = read_json(path)
    entries = written["blends"]
    shares = {n: e["effective_share"] for n, e in entries.items() if "effective_share" in e}
    return name, against_parts(cfg, name, entries[name], hidden), shares, written["shared"]["space"]


def board_comparison(cfg: LeaderboardParams, table: str, hidden: Hidden | None, local: dict, reported: dict, title: str,
                     extra: dict | None = None, after: str = "") -> str:
    """A table of `leaderboard.<table>` rows with paired bootstrap differences to its reference on
    each board; writes build/tables/<table>.md and build/metrics/leaderboard/<table>.json."""
    rows, reference = getattr(cfg, table).rows, getattr(cfg, table).reference
    compare = {}
    if local:
        subs = {n: hidden.indexed(n) for n in dict.fromkeys([reference] + rows)}
        boot = cfg.bootstrap
        compare = boards.compare(hidden.parts, subs, reference, [r for r in rows if r != reference],
                                 boot.draws, boot.seed, boot.confidence)
    write_json(LEADERBOARD_METRICS / f"{table}.json",
               {"rows": rows, "reference": reference, "bootstrap": cfg.bootstrap.model_dump(),
                "scores": {r: local.get(r) for r in rows}, "compare": compare, **(extra or {})})
    text = board_table(title, rows, local, reported, compare, reference, cfg.digits, cfg.bootstrap.confidence)
    text = text + ("\n" + after if after else "")
    write_text(TABLES / f"{table}.md", text)
    return text


def shake_up(cfg: ShakeupParams, blends: dict, hidden: Hidden | None = None) -> tuple[dict, list[str], str]:
    """The shake-up of the submissions `shakeup.rows`: (shakeup.json, sentences, figure path)."""
    figure = FIGURES / "shakeup.png"
    hidden = hidden or Hidden.read()
    if hidden is None:  # real-data mode without a local board: Kaggle's labels only
        said = [f"No shake-up: {HIDDEN}/solution.csv is missing (no local hidden set; dataset.holdout makes one)."]
        result = {"splits": cfg.splits, "public_share": cfg.public_share, "seed": cfg.seed, "files": 0,
                  "blends": [], "submissions": {}, "swaps": [], "sentences": said}
        write_json(SHAKEUP_METRICS / "shakeup.json", result)
        plot_no_shakeup(said[0], figure)
        return result, said, str(figure)
    solution = hidden.solution
    labels = [c for c in solution.columns if c != "row_id"]
    y = solution[labels].to_numpy()
    keep = (y.sum(axis=0) > 0) & ((1 - y).sum(axis=0) > 0)
    if not keep.any():  # a small board: no split can be scored
        said = [f"No shake-up: no label column of {HIDDEN}/solution.csv has both positives and negatives "
                f"({len(y)} rows), so no split has a score."]
        result = {"splits": cfg.splits, "public_share": cfg.public_share, "seed": cfg.seed,
                  "files": int(boards.file_of(solution["row_id"]).nunique()), "blends": [], "submissions": {},
                  "swaps": [], "sentences": said, "undefined": said[0]}
        write_json(SHAKEUP_METRICS / "shakeup.json", result)
        plot_no_shakeup(said[0], figure)
        return result, said, str(figure)
    file_of_row, files = file_index(boards.file_of(solution["row_id"]))
    board_table = hidden.board_of
    stem = next(c for c in board_table.columns if c != "board")
    on_board = dict(zip(board_table[stem], board_table["board"]))
    observed = np.array([[on_board.get(f) == "public" for f in files]])
    splits = random_splits(len(files), cfg.public_share, cfg.splits, cfg.seed)

    scores, diffs, subs = {}, {}, {}
    for name in tqdm(cfg.rows, desc="shake-up", leave=False):
        sub = hidden.indexed(name)
        missing = sorted(set(solution["row_id"]) - set(sub.index))
        if missing:
            raise LeaderboardError(f"submissions/{name}/submission.csv lacks {len(missing)} hidden row(s), e.g. {missing[:2]}")
        pc = pair_counts(y[:, keep], sub.reindex(solution["row_id"])[labels].to_numpy()[:, keep], file_of_row, len(files))
        pub, priv = split_scores(pc, splits)
        opub, opriv = split_scores(pc, observed)
        scores[name] = (pub, priv)
        d = priv - pub
        diffs[name] = [round(float(v), 6) for v in d[np.isfinite(d)]]
        subs[name] = summarise(opriv[0] - opub[0], d)
    swaps = [{"a": a, "b": b, "p_swap": rounded(swap_probability(*scores[a], *scores[b]), 4)}
             for a, b in combinations(cfg.rows, 2)]
    result = {"splits": cfg.splits, "public_share": cfg.public_share, "seed": cfg.seed, "files": len(files),
              "blends": [n for n in cfg.rows if n in blends], "submissions": subs, "swaps": swaps,
              "differences": diffs}
    said = shakeup_sentences(result)
    result["sentences"] = said
    write_json(SHAKEUP_METRICS / "shakeup.json", {k: v for k, v in result.items() if k != "differences"})
    if any(diffs.values()):
        plot_shakeup(result, figure)
    else:
        plot_no_shakeup(said[0], figure)
    return {k: v for k, v in result.items() if k != "differences"}, said, str(figure)


def rounded(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def run(params: dict, key: str | None = None) -> LeaderboardResult:
    cfg = LeaderboardParams.model_validate(params["leaderboard"])  # typed once (birdclef_eos/report/leaderboard_config.py)
    names = list(dict.fromkeys(list(params["submissions"]) + cfg.others + list(params["blends"])))
    hidden = Hidden.read()
    local = local_scores(names, hidden)
    paper = (yaml.safe_load(REPORTED.read_text()) or {}) if REPORTED.exists() else {}
    reported = paper.get("table2", {})
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
    settings = {n: run_settings(found.get(n)) for n in cfg.table2}
    text = table2(cfg.table2, local, reported, kaggle, settings, cfg.digits)
    write_text(TABLES / "table2.md", text)
    blend_name, against, shares, space = blend_parts(cfg, list(params["blends"]), hidden) if local else (None, {}, {}, None)
    # one decimal more than the scores: the paper's resolution (0.002) must show in the differences
    after = blend_parts_markdown(blend_name, against, shares, space, cfg.digits + 1, cfg.bootstrap.confidence) \
        if blend_name else ""
    table3 = board_comparison(cfg, "table3", hidden, local, paper.get("table3", {}),
                              "Table 3: the eos7 blend and the standalone submissions, public and private.",
                              {"blend": blend_name, "against": against, "effective_share": shares, "space": space},
                              after)
    table4 = board_comparison(cfg, "table4", hidden, local, paper.get("table4", {}),
                              "Table 4: the ceiling attempts, public and private (differences to eos7).")
    shaken, said, shake_figure = shake_up(ShakeupParams.model_validate(params["shakeup"]), params["blends"], hidden)
    return LeaderboardResult(leaderboard=result, table2=text, table3=table3, table4=table4,
                             shakeup=shaken, shakeup_sentences=said, shakeup_figure=shake_figure,
                             kaggle_dates={n: e["date"] for n, e in kaggle.items()},
                             mismatches=[m for m in map(mismatch_note, kaggle.values()) if m],
                             figure=str(figure))
