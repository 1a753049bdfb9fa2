"""Stage `probe`: per-block kNN probe of the frozen backbone (the paper's Table 1), and the
blocks it selects for the sequence head.

Draws `probe.species` x `probe.clips` focal clips (one seeded 5-s window each), runs them once
through the probed graph, scores every block with grouped k-fold kNN (plus a linear probe) and
writes build/metrics/probe/probe.json, build/figures/probe.png, build/tables/table1.md,
models/probe_selected.json and Figure 1 with the selected blocks marked
(build/figures/architecture_selected.png).

``run`` takes the params as the notebook passes them or as ``Params``, and types `probe` once
(``ProbeParams``, birdclef_eos/probe/config.py) and `runtime` (``RuntimeParams``,
birdclef_eos/io/runtime_config.py); `backbone` and `dataset.sample_rate` stay the mapping
stages/runner.py reads.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass

import pandas as pd
import yaml
from tqdm import tqdm

from birdclef_eos.audio.windows import forward
from birdclef_eos.backbone.registry import BACKBONES
from birdclef_eos.io.files import read_json, write_json, write_text
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.probe import knn
from birdclef_eos.probe.clips import draw_clips
from birdclef_eos.probe.config import ProbeParams
from birdclef_eos.report.architecture import draw_architecture
from birdclef_eos.report.figures import plot_probe
from birdclef_eos.report.tables import table1_markdown
from stages.paths import (BLOCKS_JSON, FIGURES, INDEX, PROBE_METRICS, PROBE_SELECTED, REPORTED,
                          TABLES)
from stages.runner import open_backbone

# Paired block comparisons, in their own folder: the heads' train stage reads build/metrics/probe, so
# a file added there would retrain every head for a statistic none of them uses.
PROBE_PAIRS = Path("build/metrics/probe_pairs/probe_pairs.json")

PARAMS = ("probe", "backbone.name", "backbone.chunk_mapping", "backbone.batch_size", "backbone.threads", "backbone.frontend",
          "dataset.sample_rate")
PROBE_JSON = PROBE_METRICS / "probe.json"
PROBE_FIGURE = FIGURES / "probe.png"
SELECTED_FIGURE = FIGURES / "architecture_selected.png"
TABLE1 = TABLES / "table1.md"


@dataclass
class ProbeResult:
    """What the probe notebook shows.

    table: Table 1 as markdown. selected: the chosen block indices (ascending).
    scores: per block name {"accuracy", "ci_low", "ci_high", "linear_accuracy", "rank", "dim", "stage"}.
    forward_s / analysis_s / total_s: seconds in the backbone, in the kNN analysis, in all.
    """
    table: str
    selected: list[int]
    chance: float
    n_clips: int
    figure: str
    architecture_figure: str
    scores: dict
    forward_s: float
    analysis_s: float
    total_s: float


@dataclass(frozen=True)
class Params:
    """What the stage reads: `probe` and `runtime` (typed) and, untyped, the backbone knobs and
    `dataset.sample_rate` (the mapping stages/runner.py opens the backbone with)."""
    probe: ProbeParams
    runtime: RuntimeParams
    rest: dict

    @classmethod
    def of(cls, params: dict | Params) -> Params:
        if isinstance(params, Params):
            return params
        return cls(ProbeParams.model_validate(params["probe"]), RuntimeParams.model_validate(params["runtime"]),
                   {k: v for k, v in params.items() if k not in ("probe", "runtime")})


def knn_config(probe: ProbeParams) -> dict:
    """The knobs birdclef_eos/probe/knn.py reads, in the order probe.json records them."""
    names = ("k", "folds", "distance", "normalisation", "bootstrap", "seed", "linear_probe", "linear_c",
             "linear_max_iter")
    return {name: getattr(probe, name) for name in names}


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
    """The paper's Table 1, for a backbone whose block numbers are the paper's (registry `paper_blocks`:
    Perch v2); another backbone's block numbers mean nothing there."""
    spec = BACKBONES.get(backbone_name)
    if spec is None or not spec.paper_blocks or not REPORTED.exists():
        return {}
    table = (yaml.safe_load(REPORTED.read_text()) or {}).get("table1", {})
    return {int(b): float(v) for b, v in table.get("knn5", {}).items()}


def rounded(scores: dict) -> dict:
    return {name: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.items()}
            for name, s in scores.items()}


def compute(params: dict | Params, runner=None) -> tuple[dict, list[dict], dict]:
    """The probe without writing anything: (result, probed blocks, timings in seconds)."""
    typed = Params.of(params)
    probe, params = typed.probe, typed.rest
    blocks = probed_blocks(read_json(BLOCKS_JSON, "run the surgery stage"), probe.blocks)
    recordings = pd.read_csv(INDEX / "recordings.csv", keep_default_na=False,
                             dtype={"recording_id": str, "primary_label": str, "path": str})
    clips = draw_clips(recordings, probe.species, probe.clips, probe.min_recordings,
                       probe.seed)

    started = time.perf_counter()
    runner = runner or open_backbone(params, typed.runtime.provider, [b["index"] for b in blocks])
    _, features, _ = forward(runner, clips, [b["name"] for b in blocks],
                             batch_windows=4 * params["backbone"]["batch_size"],
                             on_bad_audio="error", sample_rate=params["dataset"]["sample_rate"],
                             desc="probe clips")
    forward_s = time.perf_counter() - started
    scored = knn.score_blocks(features, clips["primary_label"].to_numpy(),
                              clips["recording_id"].to_numpy(), knn_config(probe),
                              progress=lambda it: tqdm(it, desc="probe blocks"))
    total_s = time.perf_counter() - started
    for b in blocks:
        scored["blocks"][b["name"]]["stage"] = b["stage"]
    pairs = block_pairs(scored["correct"], clips["recording_id"].to_numpy(), probe)
    result = {
        "backbone": params["backbone"]["name"], "blocks": rounded(scored["blocks"]),
        "chance": round(scored["chance"], 6),
        "selected": knn.top_blocks(scored["blocks"], probe.select),
        "n_species": int(clips["primary_label"].nunique()), "n_clips_per_species": probe.clips,
        "n_clips": len(clips), "n_recordings": int(clips["recording_id"].nunique()),
        "species": sorted(clips["primary_label"].unique().tolist()), "choices": knn_config(probe),
    }
    return result, blocks, {"forward_s": forward_s, "analysis_s": total_s - forward_s, "total_s": total_s,
                            "pairs": pairs}


def block_pairs(correct: dict, recordings, probe: ProbeParams) -> dict:
    """Paired bootstrap over recordings of each block's accuracy minus the final block's (the same
    clips, resampled together), and the penultimate minus the final (paper 3.2) by name."""
    names = sorted(correct)
    if len(names) < 2:
        return {"final": names[-1] if names else None, "versus_final": {}}
    final = names[-1]
    versus = {n: knn.paired_difference(correct[n], correct[final], recordings, probe.bootstrap, probe.seed)
              for n in names[:-1]}
    return {"final": final, "penultimate": names[-2], "versus_final": versus,
            "penultimate_minus_final": versus[names[-2]]}


def run(params: dict | Params, key: str | None = None, runner=None) -> ProbeResult:
    result, blocks, timings = compute(params, runner)
    write_json(PROBE_PAIRS, timings.pop("pairs"))
    write_json(PROBE_JSON, result)
    write_json(PROBE_SELECTED, {"blocks": result["selected"]})
    table = table1_markdown(result, blocks, reported_table1(result["backbone"]))
    write_text(TABLE1, table)
    plot_probe(result, blocks, PROBE_FIGURE)
    inventory = read_json(BLOCKS_JSON)
    draw_architecture(inventory, SELECTED_FIGURE, result["selected"],
                      title=f"{inventory.get('backbone', 'backbone')}: {len(inventory['blocks'])} MBConv "
                            f"blocks; marked: the probe's top {len(result['selected'])} "
                            "(read by the head when train.blocks is auto)")
    return ProbeResult(table=table, selected=result["selected"], chance=result["chance"],
                       n_clips=result["n_clips"], figure=str(PROBE_FIGURE),
                       architecture_figure=str(SELECTED_FIGURE), scores=result["blocks"], **timings)
