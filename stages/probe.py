"""Stage `probe`: per-block kNN probe of the frozen backbone (the paper's Table 1), and the
blocks it selects for the sequence head.

Draws `probe.species` x `probe.clips` focal clips (one seeded 5-s window each), runs them once
through the probed graph, scores every block with grouped k-fold kNN (plus a linear probe) and
writes metrics/probe/probe.json, figures/probe.png, paper/tables/table1.md,
models/probe_selected.json and Figure 1 with the selected blocks marked
(figures/architecture_selected.png; the surgery stage runs before the probe, so its
figures/architecture.png can mark only an explicit `head.blocks` list).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.probe import knn
from birdclef_eos.report.architecture import draw_architecture
from birdclef_eos.io.files import atomic_path, write_json, write_text
from stages.paths import (BACKBONE_JSON, BLOCKS_JSON, FIGURES, INDEX, PROBE_METRICS,
                          PROBE_SELECTED, PROBED_ONNX, REPORTED, TABLES)
from birdclef_eos.audio.windows import forward, random_starts

PARAMS = ("probe", "backbone")
PROBE_JSON = PROBE_METRICS / "probe.json"
PROBE_FIGURE = FIGURES / "probe.png"
SELECTED_FIGURE = FIGURES / "architecture_selected.png"
TABLE1 = TABLES / "table1.md"


def open_backbone(backbone: dict, blocks: list[int]):
    from birdclef_eos.backbone.runner import Backbone  # the runner (a domain module)
    return Backbone(PROBED_ONNX, BACKBONE_JSON, BLOCKS_JSON, backbone["threads"],
                    backbone["batch_size"], backbone["chunk_mapping"], blocks=blocks, progress=False)


def choose_species(recordings: pd.DataFrame, n_species: int, min_recordings: int,
                   rng: np.random.Generator) -> list[str]:
    """Seeded draw among species with at least ``min_recordings`` recordings; if too few
    qualify, the species with the most recordings (each needs two, or it can never be
    predicted right under recording-grouped folds)."""
    counts = recordings.groupby("primary_label").size().sort_index()
    eligible = counts[counts >= min_recordings].index.tolist()
    if len(eligible) >= n_species:
        return sorted(rng.choice(eligible, size=n_species, replace=False).tolist())
    usable = counts[counts >= 2].sort_values(ascending=False, kind="stable")
    if len(usable) < n_species:
        raise knn.ProbeError(f"{INDEX / 'recordings.csv'}: only {len(usable)} species have two or "
                             f"more recordings; probe.species asks for {n_species}")
    return sorted(usable.index[:n_species].tolist())


def draw_clips(recordings: pd.DataFrame, n_species: int, n_clips: int, min_recordings: int,
               seed: int) -> pd.DataFrame:
    """One row per clip: recording_id, path, primary_label, read_s. A species with fewer
    recordings than clips gets several windows per recording (spread round-robin)."""
    rng = np.random.default_rng(seed)
    rows = []
    for species in choose_species(recordings, n_species, min_recordings, rng):
        recs = recordings[recordings["primary_label"] == species].sort_values("recording_id")
        recs = recs.iloc[rng.permutation(len(recs))[:n_clips]]
        per_rec = np.bincount(np.arange(n_clips) % len(recs), minlength=len(recs))
        for (_, rec), n in zip(recs.iterrows(), per_rec):
            for start in sorted(random_starts(rec["duration_s"], int(n), rng)):
                rows.append({"recording_id": rec["recording_id"], "path": rec["path"],
                             "primary_label": species, "read_s": start})
    return pd.DataFrame(rows)


def knn_config(probe: dict) -> dict:
    return {"k": probe["k"], "folds": probe["folds"], "distance": probe["distance"],
            "normalisation": probe["normalisation"], "bootstrap": probe["bootstrap"],
            "seed": probe["seed"], "linear_probe": probe["linear_probe"],
            "linear_c": probe["linear_c"], "linear_max_iter": probe["linear_max_iter"]}


def probed_blocks(blocks_info: dict, wanted) -> list[dict]:
    blocks = blocks_info["blocks"]
    if wanted == "all":
        return blocks
    known = {b["index"]: b for b in blocks}
    missing = [i for i in wanted if i not in known]
    if missing:
        raise knn.ProbeError(f"{BLOCKS_JSON}: probe.blocks names unknown blocks {missing}")
    return [known[i] for i in sorted(wanted)]


def reported_table1(backbone_name: str) -> dict[int, float]:
    """The paper's Table 1 (Perch v2 only: its block numbers mean nothing for other backbones)."""
    if backbone_name != "perch_v2" or not REPORTED.exists():
        return {}
    table = (yaml.safe_load(REPORTED.read_text()) or {}).get("table1", {})
    return {int(b): float(v) for b, v in table.get("knn5", {}).items()}


def table1_markdown(result: dict, blocks: list[dict], reported: dict[int, float]) -> str:
    choices = result["choices"]
    head = ["Block", "Stage", "Dim", f"kNN-{choices['k']} [95% CI]", "Linear probe", "Rank"]
    if reported:
        head.append("kNN-5 reported")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in blocks:
        s = result["blocks"][b["name"]]
        cells = [str(b["index"]), str(b["stage"]), str(s["dim"]),
                 f"{s['accuracy']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]",
                 f"{s['linear_accuracy']:.3f}" if "linear_accuracy" in s else "-", str(s["rank"])]
        if reported:
            cells.append(f"{reported[b['index']]:.3f}" if b["index"] in reported else "-")
        lines.append("| " + " | ".join(cells) + " |")
    caption = (f"Table 1: per-block {choices['k']}-NN top-1 accuracy, {choices['folds']}-fold "
               f"recording-grouped CV on {result['n_species']} species x {result['n_clips_per_species']}"
               f" clips ({result['backbone']}); {choices['distance']} distance, "
               f"{choices['normalisation']} features; 95% interval from a recording bootstrap; "
               f"chance {result['chance']:.3f}. Selected blocks: {result['selected']}.")
    return caption + "\n\n" + "\n".join(lines) + "\n"


def plot(result: dict, blocks: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = [b["index"] for b in blocks]
    s = [result["blocks"][b["name"]] for b in blocks]
    acc = np.array([x["accuracy"] for x in s])
    err = np.array([[a - x["ci_low"] for a, x in zip(acc, s)], [x["ci_high"] - a for a, x in zip(acc, s)]])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.errorbar(idx, acc, yerr=err, fmt="o-", capsize=3, label=f"kNN-{result['choices']['k']} (95% CI)")
    if all("linear_accuracy" in x for x in s):
        ax.plot(idx, [x["linear_accuracy"] for x in s], "s--", alpha=0.6, label="linear probe")
    chosen = [i for i in idx if i in result["selected"]]
    ax.scatter(chosen, [result["blocks"][f"block_{i:02d}"]["accuracy"] for i in chosen], s=160,
               facecolors="none", edgecolors="red", label="selected")
    ax.axhline(result["chance"], color="grey", ls=":", label=f"chance {result['chance']:.3f}")
    ax.set_xlabel("block")
    ax.set_ylabel("top-1 accuracy")
    ax.set_xticks(idx)
    ax.set_title(f"Per-block probe, {result['backbone']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, metadata={"Software": None})
    plt.close(fig)


def rounded(scores: dict) -> dict:
    return {name: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.items()}
            for name, s in scores.items()}


def compute(params: dict, runner=None) -> tuple[dict, list[dict], dict]:
    """The probe without writing anything: (result, probed blocks, timings in seconds)."""
    probe, backbone = params["probe"], params["backbone"]
    blocks = probed_blocks(json.loads(BLOCKS_JSON.read_text()), probe["blocks"])
    recordings = pd.read_csv(INDEX / "recordings.csv", keep_default_na=False,
                             dtype={"recording_id": str, "primary_label": str, "path": str})
    clips = draw_clips(recordings, probe["species"], probe["clips"], probe["min_recordings"],
                       probe["seed"])

    started = time.perf_counter()
    runner = runner or open_backbone(backbone, [b["index"] for b in blocks])
    _, features, _ = forward(runner, clips, [b["name"] for b in blocks],
                             batch_windows=4 * backbone["batch_size"], on_bad_audio="error",
                             desc="probe clips")
    forward_s = time.perf_counter() - started
    scored = knn.score_blocks(features, clips["primary_label"].to_numpy(),
                              clips["recording_id"].to_numpy(), knn_config(probe),
                              progress=lambda it: tqdm(it, desc="probe blocks"))
    total_s = time.perf_counter() - started
    for b in blocks:
        scored["blocks"][b["name"]]["stage"] = b["stage"]
    result = {
        "backbone": backbone["name"], "blocks": rounded(scored["blocks"]),
        "chance": round(scored["chance"], 6),
        "selected": knn.top_blocks(scored["blocks"], probe["select"]),
        "n_species": int(clips["primary_label"].nunique()), "n_clips_per_species": probe["clips"],
        "n_clips": len(clips), "n_recordings": int(clips["recording_id"].nunique()),
        "species": sorted(clips["primary_label"].unique().tolist()), "choices": knn_config(probe),
    }
    return result, blocks, {"forward_s": forward_s, "analysis_s": total_s - forward_s, "total_s": total_s}


def run(params: dict, key: str | None = None, runner=None) -> dict:
    result, blocks, timings = compute(params, runner)
    write_json(PROBE_JSON, result)
    write_json(PROBE_SELECTED, {"blocks": result["selected"]})
    table = table1_markdown(result, blocks, reported_table1(result["backbone"]))
    write_text(TABLE1, table)
    plot(result, blocks, PROBE_FIGURE)
    inventory = json.loads(BLOCKS_JSON.read_text())
    draw_architecture(inventory, SELECTED_FIGURE, result["selected"],
                      title=f"{inventory.get('backbone', 'backbone')}: {len(inventory['blocks'])} MBConv "
                            f"blocks; marked: the probe's top {len(result['selected'])} "
                            "(read by the head when head.blocks is auto)")
    return {"table": table, "selected": result["selected"], "chance": result["chance"],
            "n_clips": result["n_clips"], "figure": str(PROBE_FIGURE),
            "architecture_figure": str(SELECTED_FIGURE), "scores": result["blocks"],
            **timings}
