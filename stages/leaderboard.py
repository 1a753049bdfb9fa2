"""Stage `leaderboard`: score every submission on the public and private boards of the hidden set,
set them beside the paper's reported scores (Table 2) and, in real-data mode, beside the scores
copied from Kaggle into leaderboard/kaggle.yaml."""
from __future__ import annotations

import json

import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.scoring import boards
from birdclef_eos.scoring import submission
from birdclef_eos.io.files import atomic_path, write_json, write_text
from stages.paths import FIGURES, HIDDEN, KAGGLE_SCORES, LEADERBOARD_METRICS, REPORTED, SUBMISSIONS, TABLES

PARAMS = ("leaderboard", "submissions")


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


def fmt(x, digits: int) -> str:
    return "-" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def settings(name: str) -> str:
    """What a submission ran with here, from its manifest (the paper's description may differ
    after `dvc exp run -S ...`); "-" when it has no manifest."""
    path = SUBMISSIONS / name / "manifest.json"
    if not path.exists():
        return "-"
    manifest = json.loads(path.read_text())
    text = f"{manifest['model']}, TTA x{len(manifest['tta'])}"
    post = manifest["postprocess"]
    if not manifest["entry"].get("postprocess"):  # `postprocess: false` runs with every knob off
        return text + ", raw"
    return text + f", prior {post['prior_alpha']:g}, sigma {post['sigma']:g}"


def table2(rows: list[str], local: dict, reported: dict, kaggle: dict, digits: int) -> str:
    """Table 2 as markdown: each row's local public/private next to the paper's public LB."""
    head = ["Submission", "Description (paper)", "Run here", "Local public", "Local private",
            "Reported public LB"]
    if kaggle:
        head += ["Kaggle public", "Kaggle private"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in rows:
        rep, loc, kag = reported.get(name, {}), local.get(name, {}), kaggle.get(name, {})
        cells = [name, rep.get("description", ""), settings(name), fmt(loc.get("public"), digits),
                 fmt(loc.get("private"), digits), fmt(rep.get("public"), digits)]
        if kaggle:
            cells += [fmt(kag.get("public"), digits), fmt(kag.get("private"), digits)]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nLocal scores: macro ROC-AUC (competition metric) on the local hidden set's public and "
            "private files; reported: the paper's Table 2 (Kaggle public LB, Perch v2 features).\n")
    return "Table 2: standalone sequence-head progression.\n\n" + "\n".join(lines) + "\n" + note


def plot(local: dict, reported: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(local) or list(reported)
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 2), 3.5))
    for off, board, colour in ((-0.2, "public", "tab:blue"), (0.2, "private", "tab:orange")):
        ax.bar([i + off for i in x], [local.get(n, {}).get(board, float("nan")) for n in names],
               width=0.4, label=f"local {board}", color=colour)
    rep = [reported.get(n, {}).get("public", float("nan")) for n in names]
    ax.plot(list(x), rep, "k_", markersize=22, mew=2, label="paper public LB")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("macro ROC-AUC")
    shown = [v for n in names for v in (local.get(n, {}).get("public"), local.get(n, {}).get("private")) if v]
    ax.set_ylim(min([0.5, *shown]) - 0.05, 1.06)
    ax.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
    ax.set_title("Submissions on the local public and private boards")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, metadata={"Software": None})
    plt.close(fig)


def run(params: dict, key: str | None = None) -> dict:
    cfg = params["leaderboard"]
    names = list(params["submissions"])
    local = local_scores(names)
    reported = (yaml.safe_load(REPORTED.read_text()) or {}).get("table2", {}) if REPORTED.exists() else {}
    kaggle = {e["submission"]: e for e in boards.read_kaggle(KAGGLE_SCORES)}
    for e in kaggle.values():
        if e["public"] is not None and e["private"] is not None:
            e["difference"] = e["private"] - e["public"]
    result = {"mode": "local" if local else "kaggle-only", "submissions": local,
              "kaggle": {n: {k: v for k, v in e.items() if k in ("public", "private", "difference")}
                         for n, e in kaggle.items()}}
    LEADERBOARD_METRICS.mkdir(parents=True, exist_ok=True)
    write_json(LEADERBOARD_METRICS / "leaderboard.json", result)
    plot(local, reported, FIGURES / "leaderboard.png")
    text = table2(cfg["table2"], local, reported, kaggle, cfg["digits"])
    write_text(TABLES / "table2.md", text)
    return {"leaderboard": result, "table2": text, "kaggle_dates": {n: e["date"] for n, e in kaggle.items()}}
