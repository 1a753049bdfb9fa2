"""What the synthetic world's genus structure does to two methods of the study: the taxonomy
smoothing (applied to the v6 head) and the probe's block ranking.

Real congeners tend to share habitat and activity hours; the synthetic world inherits a share of each
species' site and hour profile from its genus (`dataset.genus_share`; 0 = congeners independent).
Taxonomy smoothing pulls a species' score towards its genus mean, so it can only help where congeners
share something; the probe reads call structure, which the knob does not touch. This script measures
both on the outputs of a finished `dvc repro` and records them under the genus share the dataset stage
was run with (read from dvc.lock, so a result is never labelled with a knob it was not built with).
Run it once per world (the default run, and a run with `-S dataset.genus_share=0`); the table in
docs/findings.md shows every world recorded.

Smoothing: v6's submission smoothed with the blends' taxonomy setting (`blend.taxonomy`) minus v6 as
it is, per board, with a paired bootstrap over the board's files (`leaderboard.bootstrap`); and the
same difference over the rare classes (at most 3 positive chunks on the board), where the issue that
motivated the knob saw the largest loss. Probe: the blocks handed to the head and the rank order of
all blocks by 5-NN accuracy (Spearman's rho between worlds in the table).

Usage: python benchmarks/world_structure.py   (after a complete `dvc repro`)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from birdclef_eos.io.files import write_text  # noqa: E402
from birdclef_eos.report import readme  # noqa: E402
from birdclef_eos.scoring import boards, metric, submission  # noqa: E402
from birdclef_eos.scoring.postprocess import taxonomy_smooth  # noqa: E402

RESULT = ROOT / "benchmarks/results/world_structure.json"
PAGE = ROOT / "docs/findings.md"
RARE = 3  # positive chunks on a board at or below which a class counts as rare


def built_genus_share() -> float:
    """The genus share the dataset stage's outputs were built with (dvc.lock); a world built before
    the knob existed is the null world, 0."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    params = lock["stages"]["dataset"]["params"]["params.yaml"]
    return float(params.get("dataset", params).get("genus_share", 0.0))


def smoothing_effect(params: dict) -> dict:
    solution = pd.read_csv(ROOT / "data/hidden/solution.csv", dtype={"row_id": str})
    parts = boards.split_solution(solution, pd.read_csv(ROOT / "data/hidden/boards.csv", dtype=str))
    v6 = submission.read(ROOT / "submissions/v6/submission.csv").set_index("row_id")
    cols = list(v6.columns)
    species = pd.read_csv(ROOT / "data/index/species.csv", keep_default_na=False).set_index("primary_label").loc[cols]
    tax = params["blend"]["taxonomy"]
    smoothed = pd.DataFrame(taxonomy_smooth(v6[cols].to_numpy(dtype=np.float64), species["genus"].to_numpy(),
                                            species["class_name"].to_numpy(), tax["genus"], tax["class"]),
                            index=v6.index, columns=cols)
    boot = params["leaderboard"]["bootstrap"]
    got = boards.compare(parts, {"v6": v6, "smoothed": smoothed}, "v6", ["smoothed"],
                         boot["draws"], boot["seed"], boot["confidence"])
    out = {"setting": {"genus": tax["genus"], "class": tax["class"]}}
    for board, part in parts.items():
        truth = part.set_index("row_id")[cols]
        rare = [c for c in cols if 0 < truth[c].sum() <= RARE and truth[c].sum() < len(truth)]
        rows = truth.index
        rare_diff = None
        if rare:
            rare_diff = round(metric.macro_auc(truth[rare].to_numpy(), smoothed.loc[rows, rare].to_numpy())
                              - metric.macro_auc(truth[rare].to_numpy(), v6.loc[rows, rare].to_numpy()), 6)
        out[board] = {**got[board]["vs"]["smoothed"], "v6": got[board]["scores"]["v6"],
                      "rare_classes": len(rare), "rare_difference": rare_diff}
    return out


def probe_ranking() -> dict:
    probe = json.loads((ROOT / "metrics/probe/probe.json").read_text())
    order = sorted(probe["blocks"], key=lambda b: -probe["blocks"][b]["accuracy"])
    return {"selected": probe["selected"], "order": order,
            "accuracy": {b: probe["blocks"][b]["accuracy"] for b in order}}


def spearman(a: list[str], b: list[str]) -> float | None:
    common = [x for x in a if x in b]
    if len(common) < 3:
        return None
    ra = pd.Series(range(len(a)), index=a)[common].rank()
    rb = pd.Series(range(len(b)), index=b)[common].rank()
    return round(float(np.corrcoef(ra, rb)[0, 1]), 3)


def _interval(d: dict) -> str:
    return f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown(worlds: dict) -> str:
    keys = sorted(worlds, key=float)
    head = ("*Generated from `benchmarks/results/world_structure.json` by benchmarks/world_structure.py; "
            "edit the generator, not this block.*\n\n")
    lines = ["| `dataset.genus_share` | smoothing on v6, public | private | rare classes (public / private) "
             "| probe hands over | rank order vs share " + keys[0] + " (Spearman) | measured |",
             "|---|---|---|---|---|---|---|"]
    ref = worlds[keys[0]]["probe"]["order"]
    for k in keys:
        w = worlds[k]
        s = w["smoothing"]
        rare = " / ".join("n/a" if s[b]["rare_difference"] is None else
                          f"{s[b]['rare_difference']:+.3f} ({s[b]['rare_classes']})" for b in ("public", "private"))
        rho = spearman(ref, w["probe"]["order"])
        lines.append(f"| {k} | {_interval(s['public'])} | {_interval(s['private'])} | {rare} | "
                     f"{w['probe']['selected']} | {'n/a' if rho is None else f'{rho:.3f}'} | {w['date']} at {w['commit']} |")
    setting = worlds[keys[-1]]["smoothing"]["setting"]
    return head + "\n".join(lines) + (
        f"\n\nSmoothing: v6 with the blends' taxonomy smoothing (genus {setting['genus']:g}, class "
        f"{setting['class']:g}) minus v6, paired bootstrap 95% interval over each board's files; rare "
        f"classes: at most {RARE} positive chunks on the board (their count in brackets), point difference "
        "of their macro-AUC.\n")


def main() -> int:
    import datetime
    import subprocess
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    share = built_genus_share()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    record = {"smoothing": smoothing_effect(params), "probe": probe_ranking(),
              "date": datetime.date.today().isoformat(), "commit": commit}
    worlds = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    worlds[f"{share:g}"] = record
    write_text(RESULT, json.dumps(worlds, indent=2, sort_keys=True) + "\n")
    block = markdown(worlds)
    readme.update_page(PAGE, "world_structure", block)
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
